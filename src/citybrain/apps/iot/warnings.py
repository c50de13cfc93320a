"""Device-health watches (设备健康) of the demo's iot devices, as plain data.

The iot app does not require the warning app, so it imports nothing of it: the warning app reads
`HEALTH_WATCHES` from every enabled app's warnings.py, checks each dict as one of its health watches
when it starts (a bad one stops the start with a message naming this app and the entry) and stores it
as a rule of the kind `health`. Each dict names an entity type and the attributes the anomaly detectors
watch for a stuck sensor, a sudden drop or jump, a drift from the neighbours (only where
`peers_within_m` is set) and single spikes (data-quality flags). `min_change` is the smallest deviation
worth reporting, above the devices' resolution and their series' ordinary ups and downs: three July
days of the demo devices' simulated readings (iot/simulator.py, one every 2 minutes) raise no warning.

The air-quality stations are watched by the environment app. Not watched here: the lamp poles (states,
not measurements); rainfall, which rests at 0 through dry spells, so a stuck gauge cannot be told from a
dry day; and, for now, the noise monitors, the rain gauges' temperature and humidity and the traffic
detectors' speeds. In the running demo (a reading every 10 s after a backfill at 5-minute steps) those
raised false device-health warnings within minutes: values that repeat for a minute between updates
read as stuck, and the humidity jump of a real downpour read as a faulty sensor.
"""

from __future__ import annotations

from typing import Any

HEALTH_WATCHES: list[dict[str, Any]] = [
    {
        # River stage in m (reported to 0.01 m): gauges stand on different rivers and reaches, so their
        # levels are no reference for each other (no drift). The flow is computed from the stage (the
        # rating curve) and swings with every shower upstream: watching it would only repeat the stage.
        # A stage can rest for many readings between showers: a float is stuck only after 36 (3 h at the
        # gauges' usual 5-minute reporting).
        "code": "health.water-level-gauge",
        "name_zh": "河道水位站设备健康",
        "name_en": "River water-level gauge health",
        "entity_type": "WaterObserved",
        "attrs": ["height"],
        "peers_within_m": None,
        "min_change": {"height": 0.05},
        "stuck_readings": 36,
    },
]
