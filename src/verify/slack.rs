//! Slack request signing v0: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`,
//! with the timestamp within five minutes of now, as Slack's SDK requires.

use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, check_timestamp, header};

#[derive(Debug, Clone)]
pub struct Slack {
    pub secret: Secret,
    pub tolerance_secs: i64,
}

impl Slack {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        let ts = header(headers, "x-slack-request-timestamp")?;
        check_timestamp("X-Slack-Request-Timestamp", ts, now, self.tolerance_secs)?;
        let sig = header(headers, "x-slack-signature")?;
        let hex_digest = sig.strip_prefix("v0=").ok_or(VerifyError::Malformed {
            header: "X-Slack-Signature".into(),
            reason: "expected v0=<hex>",
        })?;
        let expected = hex::decode(hex_digest).map_err(|_| VerifyError::Malformed {
            header: "X-Slack-Signature".into(),
            reason: "not hex",
        })?;
        let parts: [&[u8]; 4] = [b"v0:", ts.as_bytes(), b":", body];
        if mac::verify(
            Algorithm::Sha256,
            self.secret.expose().as_bytes(),
            &parts,
            &expected,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", ts.parse().unwrap());
        h.insert("x-slack-signature", sig.parse().unwrap());
        h
    }

    fn slack() -> Slack {
        Slack {
            secret: Secret::new("8f742231b10e8888abcd99yyyzzz85a5".into()),
            tolerance_secs: 300,
        }
    }

    /// The published example of Slack's "Verifying requests from Slack".
    #[test]
    fn published_vector_passes() {
        let h = headers(
            "1531420618",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        );
        assert_eq!(
            slack().verify(&h, BODY.as_bytes(), 1531420618 * 1000),
            Ok(())
        );
        assert_eq!(
            slack().verify(&h, b"x", 1531420618 * 1000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_timestamps_are_refused() {
        let h = headers(
            "1531420618",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        );
        assert!(matches!(
            slack().verify(&h, BODY.as_bytes(), (1531420618 + 301) * 1000),
            Err(VerifyError::Stale { .. })
        ));
    }
}
