//! Keys, credentials, revocation and prefix authorisation (pure).
