# Entry point of the example app. With the image mounted at /rom and
# /rom, /rom/lib on sys.path (as MicroPython sets up on ports with ROMFS):
#     import main; print(main.run())
import json

from sensors import Thermometer
from util import clamp, moving_average

CONFIG_PATH = "/rom/config.json"


def load_config(path=CONFIG_PATH):
    with open(path) as f:
        return json.load(f)


def run(config=None, readings=None):
    config = config or load_config()
    thermo = Thermometer(offset=config["calibration"]["offset"])
    readings = readings if readings is not None else config["demo_readings"]
    temps = [thermo.convert(r) for r in readings]
    smooth = moving_average(temps, config["window"])
    lo, hi = config["limits"]
    return [clamp(t, lo, hi) for t in smooth]


if __name__ == "__main__":
    print(load_config()["name"], run())
