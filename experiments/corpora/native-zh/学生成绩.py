"""学生成绩管理：录入、统计和排名。"""


class 学生:
    def __init__(self, 姓名, 学号):
        self.姓名 = 姓名
        self.学号 = 学号
        self.成绩 = {}

    def 录入成绩(self, 科目, 分数):
        # 分数必须在 0 到 100 之间
        if not 0 <= 分数 <= 100:
            raise ValueError(f"分数无效：{分数}")
        self.成绩[科目] = 分数

    def 平均分(self):
        if not self.成绩:
            return 0.0
        return sum(self.成绩.values()) / len(self.成绩)


def 排名(学生列表):
    """按平均分从高到低排序。"""
    return sorted(学生列表, key=lambda 某人: 某人.平均分(), reverse=True)


def 打印成绩单(学生列表):
    for 名次, 某人 in enumerate(排名(学生列表), start=1):
        print(f"第{名次}名 {某人.姓名} 平均分 {某人.平均分():.1f}")
