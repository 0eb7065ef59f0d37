"""统计一段中文文本里的字频和词频。"""
from collections import Counter

标点 = set("，。！？；：、（）《》“”")


def 字频(文本):
    计数器 = Counter()
    for 字 in 文本:
        if 字 in 标点 or 字.isspace():
            continue
        计数器[字] += 1
    return 计数器


def 最常见(文本, 个数=5):
    # 返回出现次数最多的几个字
    return 字频(文本).most_common(个数)


def 段落数(文本):
    段落 = [行 for 行 in 文本.split("\n") if 行.strip()]
    return len(段落)


def 报告(文本):
    print("段落数：", 段落数(文本))
    for 字, 次数 in 最常见(文本):
        print(f"{字}：{次数}次")
