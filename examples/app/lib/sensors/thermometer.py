# Converts raw 12-bit ADC readings to degrees Celsius.


class Thermometer:
    def __init__(self, offset=0.0, scale=0.0625):
        self.offset = offset
        self.scale = scale

    def convert(self, raw):
        return raw * self.scale + self.offset
