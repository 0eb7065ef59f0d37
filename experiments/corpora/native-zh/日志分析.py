"""分析服务器日志：按级别统计，找出错误最多的模块。"""
import re

日志格式 = re.compile(r"^(\S+) \[(\w+)\] (\w+): (.*)$")


def 解析行(行):
    匹配 = 日志格式.match(行)
    if not 匹配:
        return None
    时间, 级别, 模块, 内容 = 匹配.groups()
    return {"时间": 时间, "级别": 级别, "模块": 模块, "内容": 内容}


def 按级别统计(所有行):
    统计 = {}
    for 行 in 所有行:
        记录 = 解析行(行)
        if 记录 is None:
            continue
        统计[记录["级别"]] = 统计.get(记录["级别"], 0) + 1
    return 统计


def 错误最多的模块(所有行):
    # 只看 ERROR 级别
    错误 = {}
    for 行 in 所有行:
        记录 = 解析行(行)
        if 记录 and 记录["级别"] == "ERROR":
            错误[记录["模块"]] = 错误.get(记录["模块"], 0) + 1
    return max(错误, key=错误.get) if 错误 else None
