"""Asset factories: one asset per config entry (sources, segments, activations) plus checks."""
