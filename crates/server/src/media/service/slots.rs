//! Upload and download slots: how many of each one user may have in progress at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use banter_protocol::ErrorCode;

use super::Media;
use crate::error::{Error, Result};
use crate::store::UserId;

impl Media {
    pub(super) fn slot(&self, user: UserId) -> Result<Slot> {
        take_slot(
            &self.in_progress,
            user,
            self.limits.uploads_per_user,
            "too many uploads in progress for this user",
        )
    }

    /// A download slot of `user` (at most `downloads_per_user` at once, then `rate_limited`):
    /// keep it as long as the response body.
    pub fn download_slot(&self, user: UserId) -> Result<Slot> {
        take_slot(
            &self.downloading,
            user,
            self.limits.downloads_per_user,
            "too many downloads in progress for this user",
        )
    }
}

/// An upload or download slot of one user, given back when dropped (an upload's moves into
/// the decoding work, so an upload whose request went away still counts until its work ends;
/// a download's lives in the response body, so it counts until the last byte is sent or the
/// connection is gone).
pub struct Slot {
    map: Arc<Mutex<HashMap<UserId, u32>>>,
    user: UserId,
}

fn take_slot(
    slots: &Arc<Mutex<HashMap<UserId, u32>>>,
    user: UserId,
    limit: u32,
    refusal: &'static str,
) -> Result<Slot> {
    let mut map = slots.lock().expect("media slots");
    let n = map.entry(user).or_insert(0);
    if *n >= limit {
        return Err(Error::new(ErrorCode::RateLimited, refusal)
            .retry_after(std::time::Duration::from_secs(1)));
    }
    *n += 1;
    Ok(Slot {
        map: Arc::clone(slots),
        user,
    })
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.map.lock().expect("media slots");
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}
