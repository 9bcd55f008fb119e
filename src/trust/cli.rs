//! weft CLI: keys and credentials.
