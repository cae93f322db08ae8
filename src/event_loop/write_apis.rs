//! The InfluxDB 2.x and 3.x write endpoints' part of the loop (README: InfluxDB 2.x
//! and 3.x): each request checked into the batch a `/write` would make, so from there
//! on it is handed to the backends like one.

use super::*;
use crate::http::{v2, v3};

impl EventLoop {
    /// Check and stamp a 2.x or 3.x write (`conn.api` says which) into the batch a
    /// `/write` would make; `None` when it holds no points. Errors come with their
    /// body in that API's shape. A 3.x write that dropped lines leaves its answer in
    /// `conn.partial`.
    pub(super) fn write_api(
        &mut self,
        conn: &mut Conn,
        head: Head,
        body: Vec<u8>,
    ) -> Result<Option<crate::batch::Batch>, (u16, Vec<u8>)> {
        let shared = &self.shared.http[conn.listener];
        let body = if head.gzip {
            request::gunzip(&body, shared.config.max_body_size)
                .map_err(|r| (r.status, api::error_body(conn.api, r.status, r.message)))?
        } else {
            body
        };
        let batch = match conn.api {
            Api::V3 => {
                let prepared = v3::prepare(
                    &shared.write,
                    &head.query,
                    head.authorization,
                    body,
                    self.now_ns,
                )
                .map_err(|r| (r.status, r.body))?;
                conn.partial = prepared.partial;
                prepared.batch
            }
            _ => v2::prepare(
                &shared.write,
                &head.query,
                head.authorization,
                body,
                self.now_ns,
            )
            .map_err(|e| (e.status, api::error_body(conn.api, e.status, &e.message)))?,
        };
        if let Some(batch) = &batch {
            shared.stats[self.id].points_in.add(batch.points as u64);
        }
        Ok(batch)
    }
}
