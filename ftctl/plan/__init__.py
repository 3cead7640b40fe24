"""Pure planning: schema patches, migration plans, diff classification, quantization parameters."""
