//! Models run in process with candle (filled in by the local-models work).
