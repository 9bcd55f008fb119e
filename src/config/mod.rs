//! UCI configuration: our own strict parser, the typed configuration, and
//! its validation.
