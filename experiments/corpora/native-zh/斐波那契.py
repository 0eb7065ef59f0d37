"""几种计算斐波那契数列的方法，比较递归与迭代。"""
import functools


@functools.lru_cache(maxsize=None)
def 递归求值(序号):
    if 序号 < 2:
        return 序号
    return 递归求值(序号 - 1) + 递归求值(序号 - 2)


def 迭代求值(序号):
    前一项, 当前项 = 0, 1
    for _ in range(序号):
        前一项, 当前项 = 当前项, 前一项 + 当前项
    return 前一项


def 数列(长度):
    # 生成前若干项
    return [迭代求值(序号) for 序号 in range(长度)]


def 校验(上限=30):
    for 序号 in range(上限):
        assert 递归求值(序号) == 迭代求值(序号), f"第{序号}项不一致"
    return True
