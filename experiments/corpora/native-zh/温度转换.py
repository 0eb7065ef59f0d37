def 摄氏转华氏(摄氏度):
    """把摄氏温度换算成华氏温度。"""
    return 摄氏度 * 9 / 5 + 32


def 华氏转摄氏(华氏度):
    return (华氏度 - 32) * 5 / 9


def 体感描述(摄氏度):
    # 按温度区间给出描述
    if 摄氏度 < 0:
        return "严寒"
    elif 摄氏度 < 10:
        return "寒冷"
    elif 摄氏度 < 20:
        return "凉爽"
    elif 摄氏度 < 30:
        return "温暖"
    return "炎热"


def 转换表(起点, 终点, 步长=5):
    结果 = []
    for 温度 in range(起点, 终点 + 1, 步长):
        结果.append((温度, round(摄氏转华氏(温度), 1), 体感描述(温度)))
    return 结果
