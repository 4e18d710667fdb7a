//! Hiding the credentials in a URL before it reaches a log or `Debug` output. The one helper
//! every adapter uses (database, Redis, NATS and AMQP URLs alike).

/// `url` with everything between `//` and `@` replaced by `***`: the user name too, since some
/// schemes carry the secret there (a NATS token, `nats://TOKEN@host`). A URL without
/// credentials comes back unchanged.
pub fn url_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let hidden = parsed.set_password(None).and_then(|()| parsed.set_username("***"));
            if hidden.is_ok() { parsed.to_string() } else { by_text(url) }
        }
        Ok(_) => url.to_owned(),
        Err(_) => by_text(url),
    }
}

/// For text the URL parser refuses: a redaction that errs on hiding too much.
fn by_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::url_credentials;

    #[test]
    fn user_names_and_passwords_are_hidden_and_the_rest_is_kept() {
        assert_eq!(url_credentials("amqp://guest:secret@host:5672/%2f"), "amqp://***@host:5672/%2f");
        assert_eq!(url_credentials("postgres://app:pw@db.example/registry"), "postgres://***@db.example/registry");
        assert_eq!(url_credentials("nats://s3cr3t-token@127.0.0.1:4222"), "nats://***@127.0.0.1:4222");
        assert_eq!(url_credentials("redis://:pw@127.0.0.1:6379"), "redis://***@127.0.0.1:6379");
        assert_eq!(url_credentials("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(url_credentials("sqlite://agent-registry.db"), "sqlite://agent-registry.db");
        assert_eq!(url_credentials("bad url://user:pw@host"), "bad url://***@host");
    }
}
