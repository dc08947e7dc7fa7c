//! The page size a stream's listing requests use, learned from the API's answers.
//!
//! Clari's gateway answers 502 when a response passes about 6 MB, so the largest page that
//! works depends on the tenant's records: 100 (the API's maximum) for most, fewer where calls
//! carry long participant lists. Halving alone from 100 would settle at 25 where 48 fits, and
//! every request spent below the largest size that fits is quota wasted. So the size starts
//! at the most the user allows (or where the last sync left it), shrinks only after a page
//! failed twice at the same size (one 502 may be a passing fault), and grows back toward the
//! smallest size that failed after a run of successes, settling near the largest that fits.
//! One [`PageSize`] is shared by every request of a read.

use std::sync::Mutex;

/// Successes in a row at the current size before it grows again: few, since each request
/// spent below the largest size that fits is quota wasted.
const GROW_AFTER: u32 = 4;

#[derive(Debug)]
pub struct PageSize {
    /// The most the user allows (`page_size`).
    max: u32,
    learned: Mutex<Learned>,
}

#[derive(Debug, Clone, Copy)]
struct Learned {
    size: u32,
    /// The smallest size that failed twice in a row (`max + 1` while none did).
    failed: u32,
    /// The largest size answered so far (0 before any).
    fits: u32,
    /// Successes in a row at `size`.
    streak: u32,
}

impl PageSize {
    /// Starts at `remembered` (what an earlier sync learned), or at `max`.
    pub fn new(max: u32, remembered: Option<u32>) -> Self {
        let max = max.max(1);
        Self {
            max,
            learned: Mutex::new(Learned {
                size: remembered.unwrap_or(max).clamp(1, max),
                failed: max + 1,
                fits: 0,
                streak: 0,
            }),
        }
    }

    /// The size for the next request.
    pub fn current(&self) -> u32 {
        self.lock().size
    }

    /// A full page of `size` was answered (a short one, a window's last, proves nothing about
    /// `size`). After a run of them at the current size, the size
    /// grows halfway to the smallest size that failed (or to the maximum).
    pub fn succeeded(&self, size: u32) {
        let mut learned = self.lock();
        learned.fits = learned.fits.max(size);
        if size != learned.size {
            return;
        }
        learned.streak += 1;
        let ceiling = (learned.failed - 1).min(self.max);
        if learned.streak >= GROW_AFTER && learned.size < ceiling {
            learned.size += (ceiling - learned.size).div_ceil(2);
            learned.streak = 0;
        }
    }

    /// The most records a request may ask for (`page_size`).
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether pages of `size` already failed twice in this read: a 502 at such a size says
    /// what was already learned, so trying it again at that size would only spend a request.
    pub fn failed_before(&self, size: u32) -> bool {
        size >= self.lock().failed
    }

    /// A page of `size` failed twice with 502: the size goes back to the largest that was
    /// answered below it; with none, it halves, or, when `size` itself was answered before
    /// (pages near the limit fit or not by their records), drops by a quarter. A page queued
    /// at an older, larger size changes nothing. Returns the size to use.
    pub fn failed(&self, size: u32) -> u32 {
        let mut learned = self.lock();
        learned.failed = learned.failed.min(size);
        if learned.size >= size {
            learned.streak = 0;
            learned.size = match learned.fits {
                0 => size / 2,
                fits if fits < size => fits,
                _ => size * 3 / 4,
            }
            .max(1);
            learned.fits = learned.fits.min(learned.size);
        }
        learned.size
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Learned> {
        self.learned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a controller against a gateway that fails pages above `fits`, for `pages`
    /// requests; returns the sizes used.
    fn settle(fits: u32, pages: usize) -> Vec<u32> {
        let size = PageSize::new(100, None);
        let mut used = Vec::new();
        for _ in 0..pages {
            let n = size.current();
            used.push(n);
            if n > fits {
                size.failed(n);
            } else {
                size.succeeded(n);
            }
        }
        used
    }

    #[test]
    fn the_size_settles_at_the_largest_page_that_fits_not_at_a_power_of_two() {
        let used = settle(48, 200);
        assert_eq!(used[0], 100);
        assert_eq!(*used.last().unwrap(), 48);
        let above = used.iter().filter(|&&n| n > 48).count();
        assert!(above <= 6, "{above} failing sizes tried: {used:?}");
    }

    #[test]
    fn a_tenant_whose_pages_all_fit_stays_at_the_maximum() {
        assert!(settle(100, 50).iter().all(|&n| n == 100));
    }

    #[test]
    fn a_remembered_size_is_the_start_and_never_above_the_maximum() {
        assert_eq!(PageSize::new(100, Some(48)).current(), 48);
        assert_eq!(PageSize::new(50, Some(80)).current(), 50);
        assert_eq!(PageSize::new(100, Some(0)).current(), 1);
    }

    #[test]
    fn a_size_that_fitted_before_and_fails_now_drops_by_a_quarter() {
        let size = PageSize::new(100, None);
        size.succeeded(100);
        assert_eq!(size.failed(100), 75);
    }

    #[test]
    fn a_size_that_failed_twice_is_known_to_fail_and_smaller_ones_are_not() {
        let size = PageSize::new(100, None);
        assert!(!size.failed_before(100));
        size.failed(48);
        assert!(size.failed_before(48) && size.failed_before(60));
        assert!(!size.failed_before(47));
    }

    #[test]
    fn a_failure_of_a_page_already_smaller_than_the_size_in_use_keeps_it() {
        let size = PageSize::new(100, None);
        assert_eq!(size.failed(100), 50);
        assert_eq!(size.failed(100), 50, "a page queued at the old size");
        assert_eq!(size.failed(50), 25);
    }
}
