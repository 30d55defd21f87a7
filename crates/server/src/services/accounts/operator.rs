//! What operators do to accounts (through `services::admin`): create them under any sign-up
//! policy, disable and enable them, revoke their sessions, delete them. Here because these
//! calls must go through the same token cache and socket kicks as a user's own revocations.

use std::sync::Arc;

use banter_protocol::{CloseCode, ErrorCode};

use super::{Accounts, normalize_username, validate_password};
use crate::bus::Event;
use crate::error::{Error, Result};
use crate::store::{DeletedUser, SessionId, StoreError, UserId, UserRecord};

fn unknown_user() -> Error {
    Error::new(ErrorCode::UnknownUser, "no such user")
}

impl Accounts {
    /// Creates an account whatever the sign-up policy, without the registration throttle
    /// (the caller holds the admin token).
    pub async fn create_by_operator(&self, username: &str, password: &str) -> Result<UserRecord> {
        let username = normalize_username(username)?;
        validate_password(password)?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        Ok(self.store.create_user(&username, &hash).await?)
    }

    /// Disables `user` (revoking every session, whose sockets close with 4001) or enables it.
    pub async fn set_disabled(&self, user: UserId, disabled: bool) -> Result<Vec<SessionId>> {
        let store = Arc::clone(&self.store);
        self.revoke_with(
            user,
            async move { store.set_disabled(user, disabled).await },
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => unknown_user(),
            e => e.into(),
        })
    }

    /// Revokes one of `user`'s sessions (its sockets close with 4001).
    pub async fn revoke_by_operator(&self, user: UserId, session: SessionId) -> Result<()> {
        let store = Arc::clone(&self.store);
        self.revoke_with(user, async move {
            store
                .revoke_session(user, session)
                .await
                .map(|()| vec![session])
        })
        .await
        .map(drop)
        .map_err(|e| match e {
            StoreError::NotFound(_) => Error::new(
                ErrorCode::UnknownSession,
                "no such live session of this user",
            ),
            e => e.into(),
        })
    }

    /// Turns `user` into a tombstone (see `AdminStore::delete_user`), then drops their tokens
    /// from the cache and closes their sockets, on a task of its own like every revocation.
    pub async fn delete_account(&self, user: UserId) -> Result<DeletedUser> {
        let (store, tokens, bus) = (
            Arc::clone(&self.store),
            Arc::clone(&self.tokens),
            Arc::clone(&self.bus),
        );
        let task = tokio::spawn(async move {
            let deleted = store.delete_user(user).await?;
            tokens.revoked(&deleted.sessions);
            for session in &deleted.sessions {
                crate::bus::publish(
                    &*bus,
                    Event::Kick {
                        user,
                        session: *session,
                        code: CloseCode::AuthRevoked,
                    },
                );
            }
            Ok::<_, StoreError>(deleted)
        });
        match task.await {
            Ok(Ok(deleted)) => Ok(deleted),
            Ok(Err(StoreError::NotFound(_))) => Err(unknown_user()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(StoreError::Backend(format!("deletion task failed: {e}")).into()),
        }
    }
}
