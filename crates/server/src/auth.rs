//! Bearer-token authentication for the feature service. Tokens come from an environment variable
//! or a file named in `feature_store.yaml` (`serving.auth`), never from the YAML itself. Health
//! checks and reflection stay open, so load balancers and `grpcurl list` need no token.

use std::path::Path;
use std::sync::Arc;

use asof_core::config::AuthConfig;
use tonic::{Request, Status};

use crate::error::{ServerError, ServerResult};

/// The tokens a server accepts. `Debug` never prints them.
#[derive(Clone)]
pub struct Tokens(Arc<Vec<Vec<u8>>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} accepted)", self.0.len())
    }
}

fn split(text: &str) -> Vec<Vec<u8>> {
    text.split([',', '\n'])
        .map(|t| t.split('#').next().unwrap_or("").trim())
        .filter(|t| !t.is_empty())
        .map(|t| t.as_bytes().to_vec())
        .collect()
}

impl Tokens {
    /// Tokens from a list (tests, embedders).
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Tokens(Arc::new(
            tokens
                .into_iter()
                .map(|t| t.as_ref().as_bytes().to_vec())
                .collect(),
        ))
    }

    /// The tokens `config` points at. An auth section that yields no token is an error: a server
    /// that was meant to be closed must not start open, nor refuse everyone.
    pub fn load(config: &AuthConfig, repo_dir: &Path) -> ServerResult<Tokens> {
        let mut tokens = Vec::new();
        if let Some(var) = &config.tokens_env {
            let text = std::env::var(var).map_err(|_| {
                ServerError::Config(format!(
                    "serving.auth.tokens_env names `{var}`, which is not set; export it with the accepted tokens (comma-separated)"
                ))
            })?;
            tokens.extend(split(&text));
        }
        if let Some(file) = &config.tokens_file {
            let path = repo_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ServerError::Config(format!(
                    "serving.auth.tokens_file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            tokens.extend(split(&text));
        }
        if config.tokens_env.is_none() && config.tokens_file.is_none() {
            return Err(ServerError::Config(
                "serving.auth names no tokens: set `tokens_env` (an environment variable) or `tokens_file`".into(),
            ));
        }
        if tokens.is_empty() {
            return Err(ServerError::Config(
                "serving.auth: the tokens source is empty; add at least one token".into(),
            ));
        }
        Ok(Tokens(Arc::new(tokens)))
    }

    /// Whether `token` is accepted. Compares every byte of every token, so the time taken says
    /// nothing about how much of a guess was right.
    pub fn accepts(&self, token: &[u8]) -> bool {
        let mut ok = false;
        for t in self.0.iter() {
            let mut diff = t.len() ^ token.len();
            for (i, b) in t.iter().enumerate() {
                diff |= usize::from(b ^ token.get(i).copied().unwrap_or(0));
            }
            ok |= diff == 0;
        }
        ok
    }

    /// Admits a request whose `authorization` header is `Bearer <token>` with an accepted token:
    /// the one rule of every front end (gRPC, Flight, HTTP, MCP).
    pub fn admit(&self, header: Option<&[u8]>) -> Result<(), &'static str> {
        let Some(header) = header else {
            return Err(
                "this server requires a token: send `authorization: Bearer <token>` (asof query --token)",
            );
        };
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "));
        match token {
            Some(t) if self.accepts(t) => Ok(()),
            Some(_) => Err("the bearer token is not accepted"),
            None => Err("the authorization header must be `Bearer <token>`"),
        }
    }

    /// [`Tokens::admit`] as a tonic interceptor's body.
    pub fn check(&self, req: Request<()>) -> Result<Request<()>, Status> {
        let header = req.metadata().get("authorization").map(|h| h.as_bytes());
        self.admit(header).map_err(Status::unauthenticated)?;
        Ok(req)
    }
}

/// Every tonic service of a server with tokens checks them first.
impl tonic::service::Interceptor for Tokens {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_commas_and_lines_and_compare_exactly() {
        let t = Tokens(Arc::new(split("alpha, beta\n# comment\ngamma # old\n")));
        assert!(t.accepts(b"alpha") && t.accepts(b"beta") && t.accepts(b"gamma"));
        assert!(!t.accepts(b"alph") && !t.accepts(b"alphaa") && !t.accepts(b""));
        assert!(!t.accepts(b"# comment"));
    }
}
