//! Query-string parsing and validation, with the API's 400 answers for bad values.
//!
//! Parameters arrive form-encoded, so an unencoded `+` in `+0000` arrives as a space and is
//! rejected, as a strict server would: clients must percent-encode it.

use axum::extract::Query;
use axum::http::Uri;
use jiff::Timestamp;

use super::data::MsRange;
use super::reply::{ApiError, PageRequest};

/// The decoded `key=value` pairs of a request, repeated keys kept.
pub(crate) struct Params(Vec<(String, String)>);

/// Largest `skip` the API accepts.
pub(crate) const MAX_SKIP: usize = 10_000;
/// Largest `limit` the API accepts.
pub(crate) const MAX_LIMIT: usize = 100;

impl Params {
    pub(crate) fn from_uri(uri: &Uri) -> Result<Params, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|err| ApiError::bad_request(err.body_text()))
    }

    /// The first value of `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, in order (a repeated key is a list).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// An integer in `min..=max`, `default` when absent.
    fn int(&self, name: &str, default: usize, min: usize, max: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be an integer between {min} and {max}, got {raw:?}"
                ))
            })
    }

    /// `skip` (0..=10000) and `limit` (1..=100); `includePagination` only when
    /// `pagination_optional` (the API documents it for `/calls` alone).
    pub(crate) fn page(
        &self,
        default_limit: usize,
        pagination_optional: bool,
    ) -> Result<PageRequest, ApiError> {
        Ok(PageRequest {
            skip: self.int("skip", 0, 0, MAX_SKIP)?,
            limit: self.int("limit", default_limit, 1, MAX_LIMIT)?,
            with_pagination: !pagination_optional || self.flag("includePagination", true)?,
        })
    }

    /// A boolean: `true`, `false`, `1` or `0` (the documented `includePrivate` values).
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name} must be one of true, false, 1, 0, got {other:?}"
            ))),
        }
    }

    /// The strict bounds `<prefix>Gt` / `<prefix>Lt` as whole milliseconds. A bound with
    /// sub-millisecond digits is rounded so that the millisecond comparison is exactly the
    /// strict comparison at full precision: `Gt` down, `Lt` up.
    pub(crate) fn range(&self, prefix: &str) -> Result<MsRange, ApiError> {
        let gt = self.timestamp(&format!("{prefix}Gt"))?;
        let lt = self.timestamp(&format!("{prefix}Lt"))?;
        let ms = |ns: i128, up: bool| {
            let floor = ns.div_euclid(1_000_000);
            let ceil = floor + i128::from(up && ns.rem_euclid(1_000_000) != 0);
            i64::try_from(ceil).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
        };
        Ok(MsRange {
            gt: gt.map(|t| ms(t.as_nanosecond(), false)),
            lt: lt.map(|t| ms(t.as_nanosecond(), true)),
        })
    }

    /// An RFC 3339 / ISO 8601 instant with an offset (`Z`, `+00:00` or `+0000`).
    fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(name)
            .map(|raw| {
                raw.parse::<Timestamp>().map_err(|err| {
                    ApiError::bad_request(format!(
                        "{name} is not a valid date-time ({raw:?}): {err}"
                    ))
                })
            })
            .transpose()
    }
}
