"""Adapters: dlrmcomp's codecs inside tools people already use.

- :mod:`dlrmcomp.adapters.numcodecs`: every registered codec as a numcodecs codec (so zarr arrays
  of format 2 can use it as their compressor); needs ``numcodecs``.
- :mod:`dlrmcomp.adapters.torchrec`: a TorchRec ``QuantizedCommCodec`` (fixed-rate, error-bounded,
  driven by an :class:`~dlrmcomp.errorbound.EBSchedule`) for the ``qcomm_codecs_registry`` of
  TorchRec's sharders; needs ``torchrec`` only to build the registry.

Nothing here is imported by ``import dlrmcomp``; each adapter imports its tool when it is imported.
"""
