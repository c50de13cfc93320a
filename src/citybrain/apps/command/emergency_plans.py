"""Mianyang's emergency plans (应急预案) the command app declares: flood control, heavy air pollution, road
accidents and severe congestion, gas leaks.

Each level also does everything of the levels below it (`cumulative`). Departments are codes of the identity
app's org tree (the demo creates them); `@district` is the government of the district the response is in.
The tasks follow the structure of municipal plans (监测预警 → 先期处置 → 扩大响应); they are local rules, not
national ones, and a city declares its own in this file.
"""

from __future__ import annotations

from citybrain.apps.command.response_plans import DISTRICT, Plan, PlanTask, cumulative

T = PlanTask

FLOOD = Plan(
    code="flood",
    name_zh="城市防汛应急预案",
    name_en="Urban flood control plan",
    # river levels over the warning stage, rainstorm warnings, the flood rule of the water bureau
    rules=("flood", "river-level", "rainstorm"),
    categories=("event.waterlogging",),
    levels=cumulative(
        iv=(
            T(
                "slj",
                "加密雨情水情监测，巡查河道堤防",
                "Monitor rain and river levels more often; patrol the embankments",
            ),
            T("qxj", "滚动发布天气预报和降雨预警", "Issue rolling weather forecasts and rainfall warnings"),
            T("cgzf", "检查排水设施，清掏雨水口", "Inspect drainage and clear the storm drains"),
        ),
        iii=(
            T("yjj", "启动防汛值守，组织会商研判", "Start flood duty and hold a situation conference"),
            T("swjt", "排水泵站满负荷运行", "Run the drainage pumping stations at full capacity"),
            T("gaj-jj", "对下穿隧道、积水路段实施交通管制", "Close underpasses and flooded road sections"),
            T(
                DISTRICT,
                "做好低洼地带、危旧房屋人员转移准备",
                "Prepare to move people out of low-lying areas and unsafe houses",
            ),
        ),
        ii=(
            T("yjj", "调派抢险救援队伍和防汛物资", "Send rescue teams and flood supplies"),
            T(
                DISTRICT,
                "转移受威胁群众，开放应急避难场所",
                "Move people at risk; open the emergency shelters",
            ),
            T("xfzd", "前置消防救援力量", "Station fire and rescue forces forward"),
            T("wjw", "医疗救护队伍待命", "Put medical rescue teams on standby"),
        ),
        i=(
            T("510700", "市防汛抗旱指挥部统一指挥", "The city flood and drought headquarters takes command"),
            T("gaj", "实施现场警戒，维护社会秩序", "Cordon off the sites and keep public order"),
            T("jyj", "中小学、幼儿园停课", "Close primary and secondary schools and kindergartens"),
            T("gdgs", "保障重要设施供电", "Keep power supplied to vital facilities"),
        ),
    ),
)

HEAVY_POLLUTION = Plan(
    code="heavy_pollution",
    name_zh="重污染天气应急预案",
    name_en="Heavy air pollution plan",
    # the environment app's heavy-pollution rule, graded by standards notes §8.2
    rules=("heavy-pollution",),
    categories=("hotline.pollution",),
    levels=cumulative(
        iv=(
            T(
                "sthj",
                "加密空气质量监测，组织会商，发布健康提示",
                "Monitor air quality more often, confer, issue health advice",
            ),
            T("cgzf", "加强道路清扫保洁和洒水降尘", "Sweep and water the roads more often to keep dust down"),
            T("zjj", "督促施工工地落实扬尘防治措施", "Make construction sites apply their dust controls"),
        ),
        iii=(
            T("zjj", "停止土石方和拆除作业", "Stop earthworks and demolition"),
            T(
                "gaj-jj",
                "加强重型柴油车管控，渣土车禁行",
                "Tighten control of heavy diesel vehicles; ban muck trucks",
            ),
            T("jyj", "中小学、幼儿园停止户外活动", "Stop outdoor activities at schools and kindergartens"),
        ),
        ii=(
            T(
                "jxj",
                "工业企业按减排清单错峰生产",
                "Industrial firms cut output by their emission-reduction lists",
            ),
            T("wjw", "医疗机构加强呼吸道疾病诊疗", "Hospitals reinforce care for respiratory illness"),
        ),
        i=(
            T("jyj", "中小学、幼儿园停课", "Close primary and secondary schools and kindergartens"),
            T("jtj", "增加公交运力，延长运营时间", "Add bus capacity and extend service hours"),
            T("gaj-jj", "实施机动车限行", "Restrict motor vehicle traffic"),
        ),
    ),
)

ROAD_TRAFFIC = Plan(
    code="road_traffic",
    name_zh="道路交通事故及严重拥堵应急预案",
    name_en="Road accident and severe congestion plan",
    rules=("traffic-congestion", "traffic-accident"),
    categories=("part.traffic_sign",),
    levels=cumulative(
        iv=(
            T("gaj-jj", "赶赴现场处置，疏导交通", "Go to the scene and direct the traffic"),
            T("jtj", "发布绕行信息，调整公交线路", "Publish detours and reroute buses"),
        ),
        iii=(
            T("wjw", "派出急救车辆开展医疗救护", "Send ambulances and give first aid"),
            T("xfzd", "开展破拆救援和清障", "Cut out the trapped and clear the wreckage"),
        ),
        ii=(
            T("yjj", "协调调度救援力量", "Co-ordinate the rescue forces"),
            T("gaj", "设置现场警戒，维护秩序", "Cordon off the scene and keep order"),
            T("sthj", "开展危险化学品泄漏环境监测", "Monitor the environment for leaked hazardous chemicals"),
        ),
        i=(
            T("510700", "成立现场指挥部统一指挥", "Set up an on-site headquarters that takes command"),
            T(DISTRICT, "安置受影响群众", "Look after the people affected"),
        ),
    ),
)

GAS_LEAK = Plan(
    code="gas_leak",
    name_zh="燃气泄漏事故应急预案",
    name_en="Gas leak plan",
    rules=("gas-leak",),
    categories=("hotline.gas",),
    levels=cumulative(
        iv=(
            T("rqgs", "关阀断气，抢修管线", "Shut the valves and repair the pipe"),
            T("xfzd", "现场警戒，稀释驱散泄漏燃气", "Cordon off the site and disperse the gas"),
        ),
        iii=(
            T("gaj", "疏散周边群众，实施交通管制", "Evacuate the neighbourhood and close the roads"),
            T("wjw", "医疗救护队伍待命", "Put medical rescue teams on standby"),
        ),
        ii=(
            T("yjj", "统一协调救援力量和物资", "Co-ordinate rescue forces and supplies"),
            T(DISTRICT, "转移安置受影响群众", "Move and shelter the people affected"),
            T("gdgs", "切断周边电源", "Cut the power around the site"),
        ),
        i=(
            T("510700", "成立现场指挥部统一指挥", "Set up an on-site headquarters that takes command"),
            T("sthj", "开展环境监测", "Monitor the environment"),
            T("zjj", "评估受损建筑安全", "Assess the safety of damaged buildings"),
        ),
    ),
)

PLANS = (FLOOD, HEAVY_POLLUTION, ROAD_TRAFFIC, GAS_LEAK)
