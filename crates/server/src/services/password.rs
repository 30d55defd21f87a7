//! Argon2id password hashing, run on the blocking pool (it is deliberately slow).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::Error;
use banter_protocol::ErrorCode;

/// Hashing parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hasher {
    memory_kib: u32,
    iterations: u32,
}

impl Hasher {
    pub(crate) fn new(memory_kib: u32, iterations: u32) -> Self {
        Self {
            memory_kib,
            iterations,
        }
    }

    fn argon2(self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .expect("argon2 parameters validated by Config");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// A PHC string for `password`.
    pub(crate) async fn hash(self, password: String) -> Result<String, Error> {
        tokio::task::spawn_blocking(move || {
            let mut raw = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
            let salt = SaltString::encode_b64(&raw)?;
            self.argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(|e| internal(&e))?
        .map_err(|e| internal(&e))
    }

    /// Whether `password` matches `phc` (a malformed stored hash never matches).
    pub(crate) async fn verify(self, password: String, phc: String) -> Result<bool, Error> {
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc)
                .map(|parsed| {
                    self.argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map_err(|e| internal(&e))
    }
}

fn internal(e: &dyn std::fmt::Display) -> Error {
    tracing::error!(error = %e, "password hashing failed");
    Error::new(ErrorCode::Internal, "internal error")
}
