import datetime


class 图书:
    def __init__(self, 书名, 作者, 编号):
        self.书名 = 书名
        self.作者 = 作者
        self.编号 = 编号
        self.借出 = False


class 图书馆:
    """管理图书的借阅和归还。"""

    借阅天数 = 30

    def __init__(self):
        self.藏书 = {}
        self.记录 = []

    def 上架(self, 书):
        self.藏书[书.编号] = 书

    def 借书(self, 编号, 读者):
        书 = self.藏书.get(编号)
        if 书 is None or 书.借出:
            return None
        书.借出 = True
        到期日 = datetime.date.today() + datetime.timedelta(days=self.借阅天数)
        self.记录.append((读者, 编号, 到期日))
        return 到期日

    def 还书(self, 编号):
        # 归还后从借阅记录中删除
        self.藏书[编号].借出 = False
        self.记录 = [条目 for 条目 in self.记录 if 条目[1] != 编号]
