"""The compressed all-to-all's own format and its device path.

- :mod:`.wire`: the wire slice (descriptor + entropy stream + escapes), CPU encode/decode, and
  conversion to frames (no GPU needed);
- :mod:`.device`: :class:`~.device.DeviceWire`, every slice of an exchange encoded into one device
  buffer and decoded from one (CuPy kernels, imported only when used).

The exchange itself (sizes, one host sync, the bytes) is :func:`dlrmcomp.dist.exchange`; its
codec seam is :class:`dlrmcomp.dist.comms.WireCodec`.
"""
from . import wire

__all__ = ["wire"]
