class 矩阵:
    """一个不依赖第三方库的小矩阵类。"""

    def __init__(self, 数据):
        self.数据 = [list(行) for 行 in 数据]
        self.行数 = len(self.数据)
        self.列数 = len(self.数据[0]) if self.数据 else 0

    def 转置(self):
        return 矩阵([[self.数据[行][列] for 行 in range(self.行数)] for 列 in range(self.列数)])

    def 相乘(self, 另一个):
        if self.列数 != 另一个.行数:
            raise ValueError("维度不匹配，无法相乘")
        结果 = [[0] * 另一个.列数 for _ in range(self.行数)]
        for 行 in range(self.行数):
            for 列 in range(另一个.列数):
                结果[行][列] = sum(self.数据[行][k] * 另一个.数据[k][列] for k in range(self.列数))
        return 矩阵(结果)

    def 显示(self):
        for 行 in self.数据:
            print(" ".join(f"{数:6.2f}" for 数 in 行))


def 单位矩阵(阶数):
    return 矩阵([[1 if 行 == 列 else 0 for 列 in range(阶数)] for 行 in range(阶数)])
