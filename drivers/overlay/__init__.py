"""The PYNQ max-pool / V_REF threshold overlay: reference model, driver, numpy twin.

Importing this package never imports :mod:`pynq`; the pynq driver classes are created on first
use (:func:`drivers.overlay.driver.ip_driver_class`).
"""
from drivers.overlay.reference import (FixedPoint, FixedPointRangeError, Geometry, GeometryError,
                                       maxpool_threshold, pack_feature_maps, reference_words,
                                       unpack_feature_maps)

__all__ = [
    "FixedPoint", "FixedPointRangeError", "Geometry", "GeometryError", "maxpool_threshold",
    "pack_feature_maps", "reference_words", "unpack_feature_maps",
]
