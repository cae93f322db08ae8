//! Which handler a request goes to, by method and path, and the handler that answers or
//! dispatches it. `route` is a plain function of the two, tested below; everything a
//! route does is in `handle`.

use super::*;
use crate::http::api;

/// What a request is, by its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET`/`HEAD /ping`: 204, as InfluxDB.
    Ping,
    /// `POST /write`: a 1.x write.
    Write,
    /// `POST /api/v2/write` or `/api/v3/write_lp`.
    WriteApi,
    /// Another method on a 2.x/3.x write path: 405 in that API's shape.
    WriteApiMethod,
    /// `GET`/`POST /query`: statements fan out, reads go to one backend.
    Query,
    /// `OPTIONS /write`: 204 with `Allow`.
    WriteOptions,
    /// Another method on `/write`: 405.
    WriteMethod,
    /// `GET`/`HEAD /`: the status page.
    StatusPage,
    /// `GET`/`HEAD /health`, `/status`, `/metrics`.
    Observe,
    /// `GET`, `POST`, `DELETE /admin/rebuild`: start, show, cancel a rebuild.
    Rebuild,
    NotFound,
}

pub(super) fn route(method: Method, path: &str) -> Route {
    use Method::{Delete, Get, Head, Options, Post};
    match (path, method) {
        ("/ping", Get | Head) => Route::Ping,
        ("/write", Post) => Route::Write,
        ("/write", Options) => Route::WriteOptions,
        ("/write", _) => Route::WriteMethod,
        (api::V2_WRITE | api::V3_WRITE, Post) => Route::WriteApi,
        (api::V2_WRITE | api::V3_WRITE, _) => Route::WriteApiMethod,
        ("/query", Get | Post) => Route::Query,
        ("/", Get | Head) => Route::StatusPage,
        ("/health" | "/status" | "/metrics", Get | Head) => Route::Observe,
        ("/admin/rebuild", Get | Post | Delete) => Route::Rebuild,
        _ => Route::NotFound,
    }
}

impl EventLoop {
    /// Answer or dispatch one complete request, by its route.
    pub(super) fn handle(&mut self, token: usize, conn: &mut Conn, head: Head, body: Vec<u8>) {
        conn.request_started = None;
        let listener = &self.shared.http[conn.listener];
        listener.stats[self.id].requests.inc();
        let close = !head.keep_alive || self.shutdown_deadline.is_some();
        let route = route(head.method, &head.path);
        let status = match route {
            Route::Ping => {
                response::no_content(&mut conn.wbuf, close);
                204
            }
            Route::Write => match self.write(conn.listener, head, body) {
                Ok(Some(batch)) => {
                    self.send_change(token, conn, batch, 0, !close);
                    return;
                }
                Ok(None) => {
                    response::no_content(&mut conn.wbuf, close);
                    204
                }
                Err(e) => {
                    response::error(&mut conn.wbuf, e.status, &e.message, "", close);
                    e.status
                }
            },
            Route::WriteApi => match self.write_api(conn, head, body) {
                Ok(Some(batch)) => {
                    self.send_change(token, conn, batch, 0, !close);
                    return;
                }
                Ok(None) => {
                    response::no_content(&mut conn.wbuf, close);
                    204
                }
                Err((status, body)) => {
                    response::full(&mut conn.wbuf, status, api::JSON, "", &body, close, false);
                    status
                }
            },
            Route::WriteApiMethod => {
                api::error(
                    &mut conn.wbuf,
                    conn.api,
                    405,
                    "invalid write method",
                    "Allow: POST\r\n",
                    close,
                );
                405
            }
            Route::Query => match self.query(token, conn, &head, &body) {
                Ok(()) => return,
                Err((status, message)) => {
                    response::error(&mut conn.wbuf, status, message, "", close);
                    status
                }
            },
            Route::WriteOptions => {
                response::full(
                    &mut conn.wbuf,
                    204,
                    "text/plain",
                    "Allow: POST\r\n",
                    b"",
                    close,
                    true,
                );
                204
            }
            Route::WriteMethod => {
                response::error(
                    &mut conn.wbuf,
                    405,
                    "invalid write method",
                    "Allow: POST\r\n",
                    close,
                );
                405
            }
            Route::StatusPage => {
                response::full(
                    &mut conn.wbuf,
                    200,
                    crate::observe::HTML,
                    crate::observe::STATUS_PAGE_HEADERS,
                    crate::observe::STATUS_PAGE,
                    close,
                    head.method == Method::Head,
                );
                200
            }
            Route::Observe => {
                let page = crate::observe::render(&self.shared, &head.path);
                response::full(
                    &mut conn.wbuf,
                    page.status,
                    page.content_type,
                    "",
                    &page.body,
                    close,
                    head.method == Method::Head,
                );
                page.status
            }
            Route::Rebuild => {
                let (status, body) = self.admin_rebuild(head.method, &head.query);
                response::full(
                    &mut conn.wbuf,
                    status,
                    crate::observe::JSON,
                    "",
                    body.as_bytes(),
                    close,
                    false,
                );
                status
            }
            Route::NotFound => {
                response::error(&mut conn.wbuf, 404, "invalid write endpoint", "", close);
                404
            }
        };
        conn.close_after_flush |= close;
        self.count_answer(conn.listener, status);
        if matches!(route, Route::Write | Route::WriteApi) {
            self.observe_write(conn.listener, conn.head_done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_and_method_has_its_route() {
        use Method::*;
        let cases = [
            (Get, "/ping", Route::Ping),
            (Head, "/ping", Route::Ping),
            (Post, "/ping", Route::NotFound),
            (Post, "/write", Route::Write),
            (Options, "/write", Route::WriteOptions),
            (Get, "/write", Route::WriteMethod),
            (Post, "/api/v2/write", Route::WriteApi),
            (Post, "/api/v3/write_lp", Route::WriteApi),
            (Get, "/api/v2/write", Route::WriteApiMethod),
            (Get, "/query", Route::Query),
            (Post, "/query", Route::Query),
            (Get, "/", Route::StatusPage),
            (Head, "/", Route::StatusPage),
            (Get, "/health", Route::Observe),
            (Get, "/status", Route::Observe),
            (Head, "/metrics", Route::Observe),
            (Post, "/health", Route::NotFound),
            (Post, "/admin/rebuild", Route::Rebuild),
            (Delete, "/admin/rebuild", Route::Rebuild),
            (Get, "/admin/rebuild", Route::Rebuild),
            (Head, "/admin/rebuild", Route::NotFound),
            (Delete, "/write", Route::WriteMethod),
            (Get, "/write/", Route::NotFound),
            (Get, "/nope", Route::NotFound),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method:?} {path}");
        }
    }
}
