//! Deterministic network simulator: many engines, virtual time, lossy links.
