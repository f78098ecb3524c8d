//! `--url URL[=CODE]`: plain HTTP/1.1 GET checks through the ingress, expecting a status code.
//!
//! A minimal client over `std::net::TcpStream` (http:// only): it sends one GET, reads the status
//! line and closes. That is all a reachability check needs, and it adds no dependency; HTTPS
//! would need a TLS stack for a feature the ingress check does not require.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use crate::Error;
use crate::report::{Check, State};

/// One `--url` argument: the URL and the status code it must answer with (default 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// The full http:// URL.
    pub url: String,
    /// The expected status code.
    pub expected: u16,
    /// `host[:port]` as written (sent as the Host header).
    authority: String,
    /// Path and query, at least `/`.
    path: String,
}

impl FromStr for UrlCheck {
    type Err = Error;

    /// Parses `URL` or `URL=CODE`; a trailing `=` followed by three digits is the code.
    fn from_str(arg: &str) -> Result<Self, Error> {
        let bad = |problem: &str| Error::UrlArgument {
            argument: arg.to_owned(),
            problem: problem.to_owned(),
        };
        let (url, expected) = match arg.rsplit_once('=') {
            Some((url, code)) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                let code: u16 = code
                    .parse()
                    .map_err(|_| bad("the status code is not a number"))?;
                if !(100..=599).contains(&code) {
                    return Err(bad("the status code must be between 100 and 599"));
                }
                (url, code)
            }
            _ => (arg, 200),
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(
                "only http:// URLs are supported (write it as http://HOST[:PORT]/PATH[=CODE])",
            ));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty()
            || authority.contains('@')
            || authority.contains(char::is_whitespace)
        {
            return Err(bad("the host is missing or not a plain host[:port]"));
        }
        if path.contains(char::is_whitespace) {
            return Err(bad("the path contains whitespace: percent-encode it"));
        }
        Ok(UrlCheck {
            url: url.to_owned(),
            expected,
            authority: authority.to_owned(),
            path,
        })
    }
}

impl UrlCheck {
    /// `host:port` to connect to (port 80 unless given).
    fn socket_address(&self) -> String {
        let has_port = match self.authority.rfind(']') {
            Some(bracket) => self.authority[bracket..].contains(':'),
            None => self.authority.contains(':'),
        };
        if has_port {
            self.authority.clone()
        } else {
            format!("{}:80", self.authority)
        }
    }

    /// Sends the GET and returns the status code (blocking).
    pub fn status_code(&self, timeout: Duration) -> Result<u16, String> {
        let address = self.socket_address();
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {address}: {e}"))?
            .collect();
        let mut last_error = format!("{address} resolved to no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
            }
        }
        let mut stream = stream.ok_or(last_error)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cilium-migrate-verify\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut status_line = String::new();
        BufReader::new(stream)
            .read_line(&mut status_line)
            .map_err(|e| format!("reading the response: {e}"))?;
        let mut parts = status_line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(version), Some(code)) if version.starts_with("HTTP/") => code
                .parse()
                .map_err(|_| format!("bad status line {:?}", status_line.trim_end())),
            _ => Err(format!(
                "not an HTTP response: {:?}",
                status_line.trim_end()
            )),
        }
    }

    /// Runs the check (on a blocking thread) and reports it.
    pub async fn check(&self, timeout: Duration) -> Check {
        let this = self.clone();
        let result = tokio::task::spawn_blocking(move || this.status_code(timeout))
            .await
            .unwrap_or_else(|e| Err(format!("the check did not run: {e}")));
        let name = format!("GET {}", self.url);
        match result {
            Ok(code) if code == self.expected => Check::new(name, State::Pass, format!("{code}")),
            Ok(code) => Check::new(name, State::Fail, format!("{code}, expected {}", self.expected))
                .with_hint("check the Ingress (or HTTPRoute) for this host and path and its backend Service"),
            Err(e) => Check::new(name, State::Fail, e)
                .with_hint("the ingress address does not answer: check the ingress controller's Service and pods"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn parses_url_and_code() {
        let cases = [
            ("http://app.example/", "app.example:80", "/", 200),
            (
                "http://app.example:8080/healthz=204",
                "app.example:8080",
                "/healthz",
                204,
            ),
            ("http://10.0.0.1?x=1", "10.0.0.1:80", "/?x=1", 200),
            ("http://[::1]:81/a?b=c=404", "[::1]:81", "/a?b=c", 404),
            ("http://[::1]/", "[::1]:80", "/", 200),
        ];
        for (arg, address, path, code) in cases {
            let parsed: UrlCheck = arg.parse().unwrap_or_else(|e| panic!("{arg}: {e}"));
            assert_eq!(
                (
                    parsed.socket_address().as_str(),
                    parsed.path.as_str(),
                    parsed.expected
                ),
                (address, path, code),
                "{arg}"
            );
        }
    }

    #[test]
    fn rejects_what_it_cannot_check() {
        for (arg, problem) in [
            ("https://app.example/", "only http://"),
            ("app.example", "only http://"),
            ("http:///x", "host is missing"),
            ("http://a/=999", "between 100 and 599"),
            ("http://a/b c", "whitespace"),
        ] {
            let error = arg.parse::<UrlCheck>().expect_err(arg).to_string();
            assert!(
                error.contains(problem) && error.contains(arg),
                "{arg}: {error}"
            );
        }
    }

    /// A real listener on loopback answering one request with `status`; returns the URL and
    /// the request it received.
    fn serve_once(status: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let handle = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let body = "hello";
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(reply.as_bytes()).expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        (format!("http://127.0.0.1:{port}/app?q=1"), handle)
    }

    #[tokio::test]
    async fn checks_status_codes_against_a_real_socket() {
        let (url, server) = serve_once("404 Not Found");
        let check = format!("{url}=404").parse::<UrlCheck>().expect("parse");
        let result = check.check(Duration::from_secs(5)).await;
        assert_eq!(result.state, State::Pass, "{result:?}");
        let request = server.join().expect("server thread");
        assert!(
            request.starts_with("GET /app?q=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");

        let (url, server) = serve_once("503 Service Unavailable");
        let result = url
            .parse::<UrlCheck>()
            .expect("parse")
            .check(Duration::from_secs(5))
            .await;
        assert_eq!(result.state, State::Fail);
        assert_eq!(result.detail, "503, expected 200");
        server.join().expect("server thread");
    }

    #[tokio::test]
    async fn connection_refused_fails_with_hint() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        let check = format!("http://127.0.0.1:{port}/")
            .parse::<UrlCheck>()
            .expect("parse");
        let result = check.check(Duration::from_secs(5)).await;
        assert_eq!(result.state, State::Fail);
        assert!(
            result.detail.contains("cannot connect"),
            "{}",
            result.detail
        );
        assert!(result.hint.is_some());
    }
}
