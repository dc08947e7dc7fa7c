//! How fast the tenant's data moves while it is read, and how big a window may be for paging
//! it to be worth the risk.
//!
//! A window answered in one request is a consistent snapshot. A window paged over several
//! requests is not: a call whose status changes leaves it, every record behind it shifts one
//! offset left, and the next page starts one record too late. The chance of that grows with
//! the window's records *and* with the number of requests its paging takes, so with the square
//! of its size. A quiet tenant's windows can be as large as `skip` allows; a busy one's must be
//! small, down to one request each.
//!
//! [`Churn`] estimates, from the windows paged so far in this sync, the rate at which a record
//! leaves its window per request sent (a departure shows as `matched` dropping between a
//! window's first and last page), and sizes windows so that the two costs balance: the partial
//! last page every window pays, and the expected re-read, in one-request parts, of a window
//! that changed while it was paged.

/// Share of a page a one-request part is filled to when it is cut at the positions of the
/// records already read: the rest leaves room for records that a changing window hid.
pub const CUT_FILL: f64 = 0.9;

/// The most pages a window is paged in while nothing has moved yet. Churn is only seen once
/// it disturbs a window, and the bigger that window the more paging it wastes; windows of at
/// most 40 pages cost a quiet tenant half a page in 40 (about 1%) in partial last pages.
pub const QUIET_PAGES: f64 = 40.0;

/// What this sync has seen of its data moving.
#[derive(Debug, Default, Clone, Copy)]
pub struct Churn {
    /// Records that left windows while they were paged.
    departures: u64,
    /// Σ records × requests over the windows paged.
    exposure: f64,
    /// A paged window came back short while its `matched` held still: the API's order is not
    /// stable between requests (ties on the sort key), so paging itself skips records.
    unstable_order: bool,
}

impl Churn {
    /// Records what paging one window saw: its `matched` on the first and last page, and the
    /// requests the paging took.
    pub fn observe_paged(&mut self, first_matched: u64, last_matched: u64, requests: u64) {
        self.departures += first_matched.saturating_sub(last_matched);
        self.exposure += first_matched as f64 * requests as f64;
    }

    pub fn observe_unstable_order(&mut self) {
        self.unstable_order = true;
    }

    /// The most records a window may hold to be paged. A window above it is cut before it is
    /// read. Before anything moved, windows of up to [`QUIET_PAGES`] pages are paged.
    ///
    /// With `ρ` departures per record per request and windows of `c` pages of `L` records, a
    /// window changes with probability about `ρ·L·c²`, and is then re-read at `1 / CUT_FILL`
    /// requests per page; every window also wastes half a page at its end. Per page that is
    /// `1 + 1/(2c) + ρ·L·c² / CUT_FILL`, least at `c³ = CUT_FILL / (4·ρ·L)`.
    pub fn paged_limit(&self, page: u32) -> u64 {
        let page = f64::from(page.max(1));
        if self.unstable_order {
            return page as u64;
        }
        if self.departures == 0 || self.exposure <= 0.0 {
            return (QUIET_PAGES * page) as u64;
        }
        let rate = self.departures as f64 / self.exposure;
        let pages = (CUT_FILL / (4.0 * rate * page))
            .cbrt()
            .clamp(1.0, QUIET_PAGES);
        (pages * page).round() as u64
    }
}

/// How many records to aim for in a part that must be answered in one request of `page`
/// records, when the part is cut blind (evenly in time): records scattered at random fall into
/// equal slices in Poisson-distributed numbers, so the target leaves two standard deviations of
/// room (`μ + 2√μ = page`); one part in about forty overflows and is cut again.
pub fn blind_part_target(page: u32) -> u64 {
    let page = f64::from(page.max(1));
    let root = -1.0 + (1.0 + page).sqrt();
    (root * root).floor().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_sync_pages_windows_of_forty_pages() {
        let mut churn = Churn::default();
        churn.observe_paged(5_000, 5_000, 50);
        assert_eq!(churn.paged_limit(100), 4_000);
    }

    #[test]
    fn the_busier_the_tenant_the_smaller_the_windows_it_pages() {
        let mut calm = Churn::default();
        calm.observe_paged(10_000, 9_999, 400);
        let mut busy = Churn::default();
        busy.observe_paged(1_000, 990, 40);
        let calm_limit = calm.paged_limit(25);
        let busy_limit = busy.paged_limit(25);
        assert!(calm_limit > busy_limit, "{calm_limit} vs {busy_limit}");
        assert!(busy_limit >= 25, "never below one page");
        // ρ = 1 / 4,000,000: c³ = 0.9 / (4 · ρ · 25) = 36,000, so about 33 pages.
        assert_eq!(calm_limit, (36_000f64.cbrt() * 25.0).round() as u64);
    }

    #[test]
    fn an_unstable_order_leaves_only_one_request_windows() {
        let mut churn = Churn::default();
        churn.observe_unstable_order();
        assert_eq!(churn.paged_limit(100), 100);
    }

    #[test]
    fn blind_parts_leave_two_standard_deviations_of_room() {
        assert_eq!(blind_part_target(100), 81);
        assert_eq!(blind_part_target(25), 16);
        assert_eq!(blind_part_target(1), 1);
        for page in [10, 25, 50, 100] {
            let target = blind_part_target(page) as f64;
            assert!(target + 2.0 * target.sqrt() <= f64::from(page));
        }
    }
}
