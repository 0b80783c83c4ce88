"""The ECP5 board targets: names for the amaranth-boards platforms the flow builds for.

A target only describes a board (platform class, which LED the bench top drives); it holds no
logic. ``get_target("ulx3s-85f").platform(speed="8")`` gives a platform instance, optionally at a
different speed grade than the board's part (for "what if" timing runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth_boards.butterstick import ButterStickPlatform
from amaranth_boards.colorlight_5a75b_r7_0 import Colorlight_5A75B_R70Platform
from amaranth_boards.ecp5_5g_evn import ECP55GEVNPlatform
from amaranth_boards.ecpix5 import ECPIX545Platform, ECPIX585Platform
from amaranth_boards.icepi_zero import IcepiZero1_3Platform
from amaranth_boards.icesugar_pro import ICESugarProPlatform
from amaranth_boards.logicbone import Logicbone85FPlatform, LogicbonePlatform
from amaranth_boards.orangecrab_r0_1 import OrangeCrabR0_1Platform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform, OrangeCrabR0_2_85FPlatform
from amaranth_boards.ulx3s import (ULX3S_12F_Platform, ULX3S_25F_Platform, ULX3S_45F_Platform,
                                   ULX3S_85F_Platform)
from amaranth_boards.versa_ecp5 import VersaECP5Platform
from amaranth_boards.versa_ecp5_5g import VersaECP55GPlatform

__all__ = ["BoardTarget", "DEFAULT_BOARD", "SPEED_GRADES", "TARGETS", "get_target", "list_boards"]

DEFAULT_BOARD = "ulx3s-85f"
SPEED_GRADES = ("6", "7", "8")


@dataclass(frozen=True)
class BoardTarget:
    """One board: its amaranth-boards platform class and the LED the bench top drives.

    ``led`` is ``(resource, number)`` or ``(resource, number, subsignal)``; the flow drives bit 0
    of that pin.
    """

    name: str
    platform_class: type
    description: str
    led: tuple = ("led", 0)

    @property
    def device(self) -> str:
        return self.platform_class.device

    @property
    def package(self) -> str:
        return self.platform_class.package

    @property
    def speed(self) -> str:
        return str(self.platform_class.speed)

    @property
    def clock_name(self) -> str:
        """Name of the oscillator resource (the platform's ``default_clk``)."""
        return self.platform_class.default_clk

    @property
    def clock_hz(self) -> float:
        """Frequency of the board oscillator, in Hz."""
        return float(self.platform_class().default_clk_frequency)

    @property
    def clock_mhz(self) -> float:
        return self.clock_hz / 1e6

    def platform(self, *, speed=None):
        """A fresh platform instance, at speed grade ``speed`` if given (``"6"``, ``"7"``, ``"8"``).

        ECP5-5G parts (``LFE5UM5G-*``) exist in speed grade 8 only.
        """
        if speed is None:
            return self.platform_class()
        grade = check_speed(speed, self.device)
        if grade == self.speed:
            return self.platform_class()
        cls = type(f"{self.platform_class.__name__}_Speed{grade}", (self.platform_class,),
                   {"speed": grade, "__module__": __name__})
        return cls()

    def summary(self) -> dict:
        return {"name": self.name, "device": self.device, "package": self.package,
                "speed": self.speed, "clock_mhz": self.clock_mhz,
                "description": self.description}


def check_speed(speed, device: str) -> str:
    """Normalise a speed grade to ``"6"``/``"7"``/``"8"``; raise for anything else."""
    if isinstance(speed, bool) or not isinstance(speed, (int, str)):
        raise TypeError(f"speed grade must be one of 6, 7, 8, not {speed!r}")
    grade = str(speed).strip()
    if grade not in SPEED_GRADES:
        raise ValueError(f"speed grade must be one of 6, 7, 8, not {speed!r}")
    if device.startswith("LFE5UM5G") and grade != "8":
        raise ValueError(f"speed grade {grade} does not exist for {device}: ECP5-5G parts are "
                         f"speed grade 8 only")
    return grade


_RGB = ("rgb_led", 0, "g")

# Supercon19Badge is left out: its toolchain_prepare passes every override twice, so any
# nextpnr option makes it fail (amaranth-boards 0.0.21).
TARGETS: dict[str, BoardTarget] = {t.name: t for t in [
    BoardTarget("ulx3s-12f", ULX3S_12F_Platform, "Radiona ULX3S, LFE5U-12F"),
    BoardTarget("ulx3s-25f", ULX3S_25F_Platform, "Radiona ULX3S, LFE5U-25F"),
    BoardTarget("ulx3s-45f", ULX3S_45F_Platform, "Radiona ULX3S, LFE5U-45F"),
    BoardTarget("ulx3s-85f", ULX3S_85F_Platform, "Radiona ULX3S, LFE5U-85F"),
    BoardTarget("orangecrab-r0.1", OrangeCrabR0_1Platform, "OrangeCrab r0.1, LFE5U-25F", _RGB),
    BoardTarget("orangecrab-r0.2-25f", OrangeCrabR0_2_25FPlatform,
                "OrangeCrab r0.2, LFE5U-25F", _RGB),
    BoardTarget("orangecrab-r0.2-85f", OrangeCrabR0_2_85FPlatform,
                "OrangeCrab r0.2, LFE5U-85F", _RGB),
    BoardTarget("ecpix5-45f", ECPIX545Platform, "LambdaConcept ECPIX-5, LFE5UM5G-45F", _RGB),
    BoardTarget("ecpix5-85f", ECPIX585Platform, "LambdaConcept ECPIX-5, LFE5UM5G-85F", _RGB),
    BoardTarget("colorlight-5a-75b", Colorlight_5A75B_R70Platform,
                "Colorlight 5A-75B r7.0 LED receiver card, LFE5U-25F"),
    BoardTarget("versa-ecp5", VersaECP5Platform, "Lattice ECP5 Versa, LFE5UM-45F"),
    BoardTarget("versa-ecp5-5g", VersaECP55GPlatform, "Lattice ECP5-5G Versa, LFE5UM5G-45F"),
    BoardTarget("ecp5-5g-evn", ECP55GEVNPlatform, "Lattice ECP5-5G evaluation board, "
                "LFE5UM5G-85F"),
    BoardTarget("logicbone-45f", LogicbonePlatform, "Logicbone, LFE5UM5G-45F"),
    BoardTarget("logicbone-85f", Logicbone85FPlatform, "Logicbone, LFE5UM5G-85F"),
    BoardTarget("butterstick", ButterStickPlatform, "ButterStick r1.0, LFE5UM5G-85F",
                ("rgb_leds_muxed", 0, "leds")),
    BoardTarget("icepi-zero", IcepiZero1_3Platform, "Icepi Zero v1.3, LFE5U-25F"),
    BoardTarget("icesugar-pro", ICESugarProPlatform, "iCESugar-Pro, LFE5U-25F", _RGB),
]}


def get_target(name) -> BoardTarget:
    """The target called ``name``; :class:`ValueError` listing the known names otherwise."""
    if isinstance(name, BoardTarget):
        return name
    if not isinstance(name, str) or name not in TARGETS:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(TARGETS)}")
    return TARGETS[name]


def list_boards() -> list[dict]:
    """One dict per target (name, device, package, speed, clock_mhz, description)."""
    return [target.summary() for target in TARGETS.values()]
