# 简单的购物车，支持折扣和库存检查
库存 = {"苹果": 10, "香蕉": 20, "牛奶": 5}
价格表 = {"苹果": 3.5, "香蕉": 2.0, "牛奶": 6.8}


class 购物车:
    def __init__(self):
        self.商品 = {}

    def 添加(self, 名称, 数量=1):
        已有 = self.商品.get(名称, 0)
        if 已有 + 数量 > 库存.get(名称, 0):
            print("库存不足：", 名称)
            return False
        self.商品[名称] = 已有 + 数量
        return True

    def 删除(self, 名称):
        self.商品.pop(名称, None)

    def 总价(self, 折扣=1.0):
        合计 = 0.0
        for 名称, 数量 in self.商品.items():
            合计 += 价格表[名称] * 数量
        return round(合计 * 折扣, 2)


if __name__ == "__main__":
    车 = 购物车()
    车.添加("苹果", 3)
    车.添加("牛奶", 9)
    print("应付金额：", 车.总价(0.9))
