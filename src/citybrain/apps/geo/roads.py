"""The road graph of Mianyang's central city: main roads and bridges as a networkx graph, and routing.

The roads are package data (``data/roads.geojson``): centre lines in WGS84 longitude/latitude with a
road class and a speed limit. The graph's nodes are the roads' vertices, merged where roads share a
vertex (within ``SNAP_METERS``) and added where two roads cross; its edges join consecutive vertices
of a road in both directions. An edge takes length / speed seconds to drive, the speed being the road's
current speed where one is set (a traffic app may set it) and its speed limit otherwise; a road whose
current speed is 0 is closed.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import orjson
import shapely
from shapely.geometry import LineString, Point

ROADS_RESOURCE = "roads.geojson"
ROAD_CLASSES = ("expressway", "arterial", "secondary")
# Vertices of different roads closer than this are one junction.
SNAP_METERS = 8.0
# A route's ends are snapped to graph nodes at most this far away.
MAX_SNAP_METERS = 5_000.0
EARTH_RADIUS_M = 6_371_008.8
# Metres per degree of latitude, and of longitude at Mianyang's latitude (for the planar snapping grid).
_M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180
Coordinate = tuple[float, float]


class RoadDataError(ValueError):
    """The road file is malformed: a road without a name, class, speed or line."""


@dataclass(frozen=True)
class Road:
    """A main road or bridge: its names, class, speed limit and centre line (lon, lat pairs)."""

    id: str
    name_zh: str
    name_en: str
    road_class: str
    speed_limit_kmh: float
    coordinates: tuple[Coordinate, ...]
    bridge: bool = False

    @property
    def meters(self) -> float:
        """The length of the centre line in metres."""
        return sum(haversine_m(a, b) for a, b in zip(self.coordinates, self.coordinates[1:], strict=False))


@dataclass(frozen=True)
class Route:
    """A route over the road graph: length, driving time, the line driven and the roads taken."""

    meters: float
    seconds: float
    coordinates: list[Coordinate]
    roads: list[str]
    road_ids: list[str] = field(default_factory=list)
    roads_en: list[str] = field(default_factory=list)
    # How far the start and the end lie from the graph nodes the route begins and ends at.
    start_offset_m: float = 0.0
    end_offset_m: float = 0.0


class NoRoute(LookupError):
    """No path joins the two points over the open roads, or a point lies off the road graph."""

    def __init__(self, message: str, *, off_graph: str | None = None, distance_m: float = 0.0) -> None:
        """Say why; `off_graph` names the point ("start" or "end") that lies too far from every road."""
        super().__init__(message)
        self.off_graph = off_graph
        self.distance_m = distance_m


def haversine_m(a: Coordinate, b: Coordinate) -> float:
    """The great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RoadDataError(f"{what} must be a number, not {value!r}")
    return float(value)


def parse_roads(document: Mapping[str, Any]) -> list[Road]:
    """Roads from a GeoJSON FeatureCollection of LineStrings with the road properties."""
    roads: list[Road] = []
    seen: set[str] = set()
    for feature in document.get("features") or []:
        props = feature.get("properties") or {}
        road_id = str(props.get("id") or "")
        if not road_id or road_id in seen:
            raise RoadDataError(f"a road has no id or a duplicate one: {road_id!r}")
        seen.add(road_id)
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "LineString" or len(geometry.get("coordinates") or []) < 2:
            raise RoadDataError(f"road {road_id} needs a LineString of two or more positions")
        coordinates = tuple(
            (_number(p[0], f"{road_id} longitude"), _number(p[1], f"{road_id} latitude"))
            for p in geometry["coordinates"]
        )
        road_class = str(props.get("road_class") or "")
        if road_class not in ROAD_CLASSES:
            raise RoadDataError(
                f"road {road_id}: class {road_class!r} is not one of {', '.join(ROAD_CLASSES)}"
            )
        speed = _number(props.get("speed_limit_kmh"), f"{road_id} speed limit")
        if speed <= 0:
            raise RoadDataError(f"road {road_id}: the speed limit must be positive")
        name_zh, name_en = str(props.get("name_zh") or ""), str(props.get("name_en") or "")
        if not name_zh or not name_en:
            raise RoadDataError(f"road {road_id} needs a Chinese and an English name")
        roads.append(
            Road(road_id, name_zh, name_en, road_class, speed, coordinates, bridge=bool(props.get("bridge")))
        )
    return roads


def load_roads() -> list[Road]:
    """The packaged main roads of the central city."""
    data = importlib.resources.files("citybrain.apps.geo").joinpath("data", ROADS_RESOURCE).read_bytes()
    return parse_roads(orjson.loads(data))


class _Snapper:
    """Merges points closer than SNAP_METERS into one node (a grid of cells that size)."""

    def __init__(self, origin_lat: float) -> None:
        self.cell_lon = SNAP_METERS / (_M_PER_DEG_LAT * math.cos(math.radians(origin_lat)))
        self.cell_lat = SNAP_METERS / _M_PER_DEG_LAT
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.points: list[Coordinate] = []

    def node(self, point: Coordinate) -> int:
        """The node at (or within snapping distance of) a point, created when new."""
        cx, cy = math.floor(point[0] / self.cell_lon), math.floor(point[1] / self.cell_lat)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for index in self.cells.get((cx + dx, cy + dy), ()):
                    if haversine_m(self.points[index], point) <= SNAP_METERS:
                        return index
        index = len(self.points)
        self.points.append(point)
        self.cells.setdefault((cx, cy), []).append(index)
        return index


def _crossings(roads: list[Road]) -> dict[str, list[Coordinate]]:
    """Points where the lines of two roads cross or touch, to be added to both as vertices."""
    lines = [LineString(road.coordinates) for road in roads]
    tree = shapely.STRtree(lines)
    left, right = tree.query(lines, predicate="intersects")
    extra: dict[str, list[Coordinate]] = {road.id: [] for road in roads}
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i >= j:
            continue
        meeting = shapely.intersection(lines[i], lines[j])
        for point in shapely.get_parts(shapely.get_parts(meeting)):
            if isinstance(point, Point):
                extra[roads[i].id].append((point.x, point.y))
                extra[roads[j].id].append((point.x, point.y))
            else:  # overlapping stretches: their ends are the junctions
                for x, y in shapely.get_coordinates(point).tolist():
                    extra[roads[i].id].append((x, y))
                    extra[roads[j].id].append((x, y))
    return extra


def _with_vertices(road: Road, points: Iterable[Coordinate]) -> list[Coordinate]:
    """The road's vertices with further points inserted in order along the line."""
    line = LineString(road.coordinates)
    along = [(float(line.project(Point(c))), c) for c in road.coordinates]
    along += [(float(line.project(Point(p))), p) for p in points]
    along.sort(key=lambda item: item[0])
    return [c for _, c in along]


@dataclass
class RoadNetwork:
    """The roads, their graph (node ids → (lon, lat)) and the current speed of each road."""

    roads: list[Road]
    graph: nx.MultiDiGraph[int]
    nodes: list[Coordinate]
    _node_array: np.ndarray[Any, np.dtype[np.float64]] = field(repr=False)
    speeds: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def by_id(self) -> dict[str, Road]:
        """The roads by id."""
        return {road.id: road for road in self.roads}

    def nearest_node(self, point: Coordinate) -> tuple[int, float]:
        """The graph node nearest to a point and its distance in metres."""
        lon, lat = point
        scale = math.cos(math.radians(lat))
        dx = (self._node_array[:, 0] - lon) * scale
        dy = self._node_array[:, 1] - lat
        index = int(np.argmin(dx * dx + dy * dy))
        return index, haversine_m(self.nodes[index], point)

    def speed_of(self, road: Road) -> float:
        """The road's current speed in km/h (its speed limit unless one was set)."""
        return self.speeds.get(road.id, road.speed_limit_kmh)

    def set_speeds(self, speeds: Mapping[str, float | None]) -> None:
        """Set (or with None clear) the current speed of roads; 0 closes a road."""
        known = self.by_id
        unknown = sorted(set(speeds) - set(known))
        if unknown:
            raise KeyError(f"unknown road(s): {', '.join(unknown)}")
        for road_id, speed in speeds.items():
            if speed is not None and (not math.isfinite(speed) or speed < 0):
                raise ValueError(f"the speed of road {road_id} must be a non-negative number")
        with self.lock:
            for road_id, speed in speeds.items():
                if speed is None:
                    self.speeds.pop(road_id, None)
                else:
                    self.speeds[road_id] = float(speed)

    def route(self, start: Coordinate, end: Coordinate, max_snap_m: float = MAX_SNAP_METERS) -> Route:
        """The fastest route between the nodes nearest to two points (NoRoute: none, or a point off the graph)."""
        source, start_offset = self.nearest_node(start)
        target, end_offset = self.nearest_node(end)
        for offset, what in ((start_offset, "start"), (end_offset, "end")):
            if offset > max_snap_m:
                raise NoRoute(
                    f"the {what} lies {offset / 1000:.1f} km from the nearest main road",
                    off_graph=what,
                    distance_m=offset,
                )
        speeds = dict(self.speeds)
        limits = {road.id: road.speed_limit_kmh for road in self.roads}

        def seconds(_u: int, _v: int, edges: dict[str, Any]) -> float | None:
            """The quickest of the parallel edges from u to v; None when every one is closed."""
            best = None
            for data in edges.values():
                kmh = speeds.get(data["road"], limits[data["road"]])
                if kmh > 0:
                    cost = data["meters"] / (kmh / 3.6)
                    best = cost if best is None or cost < best else best
            return best

        try:
            path: list[int] = nx.dijkstra_path(self.graph, source, target, weight=seconds)
        except nx.NetworkXNoPath:
            raise NoRoute("no open road joins the two points") from None
        meters = total = 0.0
        taken: list[str] = []
        for u, v in itertools.pairwise(path):
            options = [
                (data["meters"] / (speeds.get(data["road"], limits[data["road"]]) / 3.6), data)
                for data in self.graph[u][v].values()
                if speeds.get(data["road"], limits[data["road"]]) > 0
            ]
            cost, data = min(options, key=lambda option: option[0])
            meters += data["meters"]
            total += cost
            if not taken or taken[-1] != data["road"]:
                taken.append(data["road"])
        roads = self.by_id
        return Route(
            meters=meters,
            seconds=total,
            coordinates=[self.nodes[n] for n in path],
            roads=[roads[r].name_zh for r in taken],
            road_ids=taken,
            roads_en=[roads[r].name_en for r in taken],
            start_offset_m=start_offset,
            end_offset_m=end_offset,
        )


def build_network(roads: list[Road]) -> RoadNetwork:
    """The graph of the roads: vertices snapped into junctions, crossings added, edges both ways."""
    if not roads:
        raise RoadDataError("there are no roads")
    mean_lat = sum(c[1] for road in roads for c in road.coordinates) / sum(len(r.coordinates) for r in roads)
    snapper = _Snapper(mean_lat)
    graph: nx.MultiDiGraph[int] = nx.MultiDiGraph()
    crossings = _crossings(roads)
    for road in roads:
        vertices = _with_vertices(road, crossings[road.id])
        ids = [snapper.node(c) for c in vertices]
        graph.add_nodes_from(ids)
        for u, v in itertools.pairwise(ids):
            if u == v:
                continue
            meters = haversine_m(snapper.points[u], snapper.points[v])
            graph.add_edge(u, v, road=road.id, meters=meters)
            graph.add_edge(v, u, road=road.id, meters=meters)
    nodes = list(snapper.points)
    return RoadNetwork(roads, graph, nodes, np.asarray(nodes, dtype=np.float64))
