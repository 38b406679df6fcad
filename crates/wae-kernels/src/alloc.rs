//! A global allocator that keeps freed large blocks for reuse.
//!
//! A training step allocates the same large tensors (activations, gradients, im2col
//! buffers) on every step. glibc serves blocks above its mmap threshold (at most 32
//! MiB) with fresh `mmap`s and unmaps them on free, so every step page-faults and
//! zeroes all of that memory again: on a 2-core machine that was 10-25% of a step.
//! [`LargeBlockCache`] wraps the system allocator and keeps up to a byte budget of
//! freed blocks of at least [`LargeBlockCache::MIN_BLOCK`] bytes, handing one back when a
//! request of exactly the same size and alignment comes (the next step's). A reused
//! block is zeroed with `memset` when zeroed memory is asked for, which costs a few
//! times less than faulting fresh pages in.
//!
//! It is opt-in per binary:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: wae_kernels::alloc::LargeBlockCache = wae_kernels::alloc::LargeBlockCache::new(1 << 30);
//! # fn main() { let v = vec![0f32; 1 << 20]; assert_eq!(v.len(), 1 << 20); }
//! ```
//!
//! The budget bounds how much freed memory stays resident on top of what the program
//! holds; when a new block does not fit, the least recently freed blocks are returned
//! to the system first.
//!
//! # Transparent huge pages, for training
//! With [`LargeBlockCache::set_huge_pages`] on (Linux only), a block of at least
//! [`LargeBlockCache::HUGE_PAGE_MIN`] bytes that comes fresh from the system is also
//! marked `madvise(MADV_HUGEPAGE)`, so that the kernel backs it with 2 MiB pages where
//! transparent huge pages are enabled (`always` or `madvise` in
//! `/sys/kernel/mm/transparent_hugepage/enabled`; most distributions ship `madvise`,
//! which otherwise leaves every block on 4 KiB pages). The convolution kernels walk many
//! planes of large buffers at once (im2col, col2im, the Winograd transforms), and with
//! 4 KiB pages those walks keep missing the TLB.
//!
//! It pays where the same blocks are used step after step, and costs where memory is
//! touched once: faulting in a huge page takes the kernel longer (it needs 2 MiB of
//! contiguous memory). On the 2-core Intel Xeon of docs/performance.md (2026-12-07,
//! `xtask bench --worker`, six blocks of off / on / on / off runs each) the training
//! step got about 2 % faster at full width and at 1/4 width (blocks: 1.00-1.05x), and
//! the one-pass evaluation of 10,000 samples 10-15 % slower. So it is off by default;
//! `wae train`, `wae bench` and the bench's training rows turn it on. `WAE_HUGE_PAGES=1`
//! or `=0` in the environment (read once) overrides both ways.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// How many freed blocks are remembered at most.
const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct Slot {
    ptr: usize,
    size: usize,
    align: usize,
    /// When it was freed (higher is more recent); 0 marks an empty slot.
    stamp: u64,
}

const EMPTY: Slot = Slot {
    ptr: 0,
    size: 0,
    align: 0,
    stamp: 0,
};

struct State {
    slots: [Slot; SLOTS],
    cached_bytes: usize,
    clock: u64,
}

/// The system allocator plus a bounded cache of freed large blocks (see the module docs).
pub struct LargeBlockCache {
    max_cached_bytes: AtomicUsize,
    /// Whether fresh large blocks get the huge-page advice (unless the environment says).
    huge_pages: AtomicBool,
    lock: AtomicBool,
    state: std::cell::UnsafeCell<State>,
}

// SAFETY: `state` is only touched while `lock` is held (see `with_state`).
unsafe impl Sync for LargeBlockCache {}

impl LargeBlockCache {
    /// Blocks smaller than this (256 KiB) go straight to the system allocator.
    pub const MIN_BLOCK: usize = 256 << 10;

    /// Fresh blocks of at least this size (4 MiB, two huge pages) get the huge-page
    /// advice when it is on (see the module docs).
    pub const HUGE_PAGE_MIN: usize = 4 << 20;

    /// A cache that keeps at most `max_cached_bytes` of freed blocks (huge-page advice
    /// off).
    pub const fn new(max_cached_bytes: usize) -> Self {
        Self {
            max_cached_bytes: AtomicUsize::new(max_cached_bytes),
            huge_pages: AtomicBool::new(false),
            lock: AtomicBool::new(false),
            state: std::cell::UnsafeCell::new(State {
                slots: [EMPTY; SLOTS],
                cached_bytes: 0,
                clock: 0,
            }),
        }
    }

    /// Changes the budget (0 turns caching off: later frees go to the system; blocks
    /// already cached stay until reused or evicted).
    pub fn set_max_cached_bytes(&self, bytes: usize) {
        self.max_cached_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The current budget in bytes.
    pub fn max_cached_bytes(&self) -> usize {
        self.max_cached_bytes.load(Ordering::Relaxed)
    }

    /// Bytes currently held in the cache (freed by the program, not yet reused).
    pub fn cached_bytes(&self) -> usize {
        self.with_state(|s| s.cached_bytes)
    }

    /// Turns the huge-page advice for fresh large blocks on or off (blocks already
    /// allocated keep theirs). `WAE_HUGE_PAGES` in the environment, when set, wins.
    pub fn set_huge_pages(&self, on: bool) {
        self.huge_pages.store(on, Ordering::Relaxed);
    }

    /// Whether fresh large blocks get the huge-page advice now (always false off Linux).
    pub fn huge_pages(&self) -> bool {
        cfg!(target_os = "linux")
            && env_huge_pages().unwrap_or_else(|| self.huge_pages.load(Ordering::Relaxed))
    }

    /// Marks a fresh block `madvise(MADV_HUGEPAGE)` when it is large enough and the
    /// advice is on. The range starts at the block's page (rounded down, as glibc's
    /// `glibc.malloc.hugetlb=1` does: the header page of an mmap'd block belongs to the
    /// same mapping, and Linux aligns large anonymous mappings to 2 MiB, so the block's
    /// first huge page stays eligible). Only a hint: a failure is ignored.
    fn advise(&self, ptr: *mut u8, size: usize) {
        #[cfg(target_os = "linux")]
        if !ptr.is_null() && size >= Self::HUGE_PAGE_MIN && self.huge_pages() {
            const PAGE: usize = 4096;
            let start = ptr as usize & !(PAGE - 1);
            let len = ptr as usize + size - start;
            // SAFETY: madvise only changes how the kernel backs the pages of
            // [start, start + len), which lie in mappings this process owns (the block
            // and the page it starts in); MADV_HUGEPAGE leaves their contents as they are.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (ptr, size);
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the spin lock above gives this thread exclusive access until released.
        let out = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        out
    }

    fn cacheable(&self, layout: &Layout) -> bool {
        layout.size() >= Self::MIN_BLOCK && layout.size() <= self.max_cached_bytes()
    }

    /// A cached block of exactly this layout, if any (the most recently freed one).
    fn take(&self, layout: &Layout) -> Option<*mut u8> {
        self.with_state(|s| {
            let mut best: Option<usize> = None;
            for (i, slot) in s.slots.iter().enumerate() {
                if slot.stamp != 0
                    && slot.size == layout.size()
                    && slot.align == layout.align()
                    && best.is_none_or(|b| s.slots[b].stamp < slot.stamp)
                {
                    best = Some(i);
                }
            }
            best.map(|i| {
                let slot = s.slots[i];
                s.slots[i] = EMPTY;
                s.cached_bytes -= slot.size;
                slot.ptr as *mut u8
            })
        })
    }

    /// Keeps a freed block; returns the blocks evicted to make room (to be freed by the
    /// caller outside the lock), or gives the block itself back when it cannot be kept.
    fn put(&self, ptr: *mut u8, layout: &Layout) -> Evicted {
        let max = self.max_cached_bytes();
        self.with_state(|s| {
            let mut evicted = Evicted::default();
            while s.cached_bytes + layout.size() > max || s.slots.iter().all(|slot| slot.stamp != 0)
            {
                // Evict the least recently freed block.
                let Some(oldest) = (0..SLOTS)
                    .filter(|&i| s.slots[i].stamp != 0)
                    .min_by_key(|&i| s.slots[i].stamp)
                else {
                    break;
                };
                let slot = s.slots[oldest];
                s.slots[oldest] = EMPTY;
                s.cached_bytes -= slot.size;
                if !evicted.push(slot) {
                    // No room to report more evictions: keep this block out instead.
                    s.slots[oldest] = slot;
                    s.cached_bytes += slot.size;
                    evicted.rejected = true;
                    return evicted;
                }
            }
            match s.slots.iter().position(|slot| slot.stamp == 0) {
                Some(i) if s.cached_bytes + layout.size() <= max => {
                    s.clock += 1;
                    s.slots[i] = Slot {
                        ptr: ptr as usize,
                        size: layout.size(),
                        align: layout.align(),
                        stamp: s.clock,
                    };
                    s.cached_bytes += layout.size();
                }
                _ => evicted.rejected = true,
            }
            evicted
        })
    }
}

/// `WAE_HUGE_PAGES`: `Some(true)` for `1` / `on` / `true` / `yes`, `Some(false)` for
/// `0` / `off` / `false` / `no`, `None` when unset or anything else. Read once, with
/// `getenv`, which does not allocate (this runs inside the global allocator).
fn env_huge_pages() -> Option<bool> {
    // 0: not read yet, 1: unset or unknown, 2: on, 3: off.
    static CHOICE: AtomicU8 = AtomicU8::new(0);
    let decode = |v: u8| match v {
        2 => Some(true),
        3 => Some(false),
        _ => None,
    };
    let v = CHOICE.load(Ordering::Relaxed);
    if v != 0 {
        return decode(v);
    }
    let read = parse_switch(getenv_bytes(c"WAE_HUGE_PAGES"));
    let v = match read {
        Some(true) => 2,
        Some(false) => 3,
        None => 1,
    };
    CHOICE.store(v, Ordering::Relaxed);
    decode(v)
}

/// An on / off switch's value (case-insensitive), `None` when absent or unknown.
fn parse_switch(v: Option<&[u8]>) -> Option<bool> {
    let v = v?;
    let is = |words: [&[u8]; 4]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
    if is([b"1", b"on", b"true", b"yes"]) {
        Some(true)
    } else if is([b"0", b"off", b"false", b"no"]) {
        Some(false)
    } else {
        None
    }
}

/// The value of an environment variable without allocating.
fn getenv_bytes(name: &std::ffi::CStr) -> Option<&'static [u8]> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `name` is NUL-terminated; getenv returns null or a NUL-terminated
        // value that stays valid while nothing modifies the environment. Modifying it
        // while other threads run is already undefined behaviour in Rust (`set_var` is
        // `unsafe` for that reason); the binaries that install this allocator only do so
        // at the start of `main` (`use_rayon_pool_only`), before any other thread.
        unsafe {
            let v = libc::getenv(name.as_ptr());
            (!v.is_null()).then(|| std::ffi::CStr::from_ptr(v).to_bytes())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = name;
        None
    }
}

/// Blocks taken out of the cache to be returned to the system.
#[derive(Default)]
struct Evicted {
    blocks: [Option<Slot>; 8],
    count: usize,
    /// The block being freed was not kept: the caller frees it.
    rejected: bool,
}

impl Evicted {
    fn push(&mut self, slot: Slot) -> bool {
        if self.count == self.blocks.len() {
            return false;
        }
        self.blocks[self.count] = Some(slot);
        self.count += 1;
        true
    }
}

// SAFETY: every block handed out comes from `System` with the same size and alignment
// as the request (exact match on reuse), and every block is either cached or given back
// to `System` exactly once.
unsafe impl GlobalAlloc for LargeBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.cacheable(&layout)
            && let Some(ptr) = self.take(&layout)
        {
            return ptr;
        }
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        self.advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.cacheable(&layout)
            && let Some(ptr) = self.take(&layout)
        {
            // SAFETY: the block is `layout.size()` bytes, owned by us until returned.
            unsafe { std::ptr::write_bytes(ptr, 0, layout.size()) };
            return ptr;
        }
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        self.advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.cacheable(&layout) {
            let evicted = self.put(ptr, &layout);
            for slot in evicted.blocks.iter().take(evicted.count).flatten() {
                // SAFETY: the slot was allocated by `System` with this size and alignment.
                unsafe {
                    System.dealloc(
                        slot.ptr as *mut u8,
                        Layout::from_size_align_unchecked(slot.size, slot.align),
                    )
                };
            }
            if !evicted.rejected {
                return;
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < Self::MIN_BLOCK && new_size < Self::MIN_BLOCK {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (caller's guarantee).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `GlobalAlloc::realloc`'s default: allocate, copy, free.
        unsafe {
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_exact_sizes_and_respects_the_budget() {
        let cache = LargeBlockCache::new(3 << 20);
        let big = Layout::from_size_align(1 << 20, 64).unwrap_or_else(|_| unreachable!());
        let other =
            Layout::from_size_align((1 << 20) + 4096, 64).unwrap_or_else(|_| unreachable!());
        unsafe {
            let a = cache.alloc(big);
            assert!(!a.is_null());
            a.write(7);
            cache.dealloc(a, big);
            assert_eq!(cache.cached_bytes(), 1 << 20);
            // Same layout: the same block comes back, zeroed on request.
            let b = cache.alloc_zeroed(big);
            assert_eq!(a, b);
            assert_eq!(b.read(), 0);
            assert_eq!(cache.cached_bytes(), 0);
            // A different size is a fresh block.
            let c = cache.alloc(other);
            assert_ne!(c, b);
            // Freeing four MiB-sized blocks into a 3 MiB budget evicts the oldest.
            let d = cache.alloc(big);
            let e = cache.alloc(big);
            cache.dealloc(b, big);
            cache.dealloc(c, other);
            cache.dealloc(d, big);
            cache.dealloc(e, big);
            assert!(cache.cached_bytes() <= 3 << 20);
            // Small blocks are never cached.
            let small = Layout::from_size_align(1024, 8).unwrap_or_else(|_| unreachable!());
            let s = cache.alloc(small);
            cache.dealloc(s, small);
            assert!(cache.cached_bytes() <= 3 << 20);
            // Drain what is left.
            while let Some(p) = cache.take(&big) {
                System.dealloc(p, big);
            }
            while let Some(p) = cache.take(&other) {
                System.dealloc(p, other);
            }
            assert_eq!(cache.cached_bytes(), 0);
        }
    }

    /// The `VmFlags` of the mapping holding `addr`, from /proc/self/smaps.
    #[cfg(target_os = "linux")]
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((lo, hi)) = range
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.trim().to_string();
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    /// With the advice on, a fresh large block's mapping carries the kernel's "hg"
    /// (MADV_HUGEPAGE) flag; with it off, or for a small block, it does not.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_fresh_blocks_get_the_huge_page_advice_when_asked() {
        let cache = LargeBlockCache::new(0);
        let big = Layout::from_size_align(8 << 20, 64).unwrap_or_else(|_| unreachable!());
        let small = Layout::from_size_align(1 << 20, 64).unwrap_or_else(|_| unreachable!());
        let env = env_huge_pages();
        let has_hg = |ptr: *mut u8, len: usize| {
            // A page well inside the block, away from neighbours sharing its ends.
            let flags = vm_flags(ptr as usize + len / 2);
            flags.split_whitespace().any(|f| f == "hg")
        };
        unsafe {
            assert!(!cache.huge_pages() || env == Some(true));
            let off = cache.alloc(big);
            cache.set_huge_pages(true);
            assert_eq!(cache.huge_pages(), env.unwrap_or(true));
            let on = cache.alloc_zeroed(big);
            let on_small = cache.alloc(small);
            assert_eq!(has_hg(on, big.size()), env.unwrap_or(true));
            assert_eq!(has_hg(off, big.size()), env.unwrap_or(false));
            assert!(!has_hg(on_small, small.size()));
            // The advice leaves the contents alone.
            assert!(
                std::slice::from_raw_parts(on, big.size())
                    .iter()
                    .all(|&b| b == 0)
            );
            cache.dealloc(on_small, small);
            cache.dealloc(on, big);
            cache.dealloc(off, big);
        }
        assert_eq!(parse_switch(Some(b"ON")), Some(true));
        assert_eq!(parse_switch(Some(b"0")), Some(false));
        assert_eq!(parse_switch(Some(b"maybe")), None);
        assert_eq!(parse_switch(None), None);
    }
}
