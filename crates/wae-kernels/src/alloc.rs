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

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    lock: AtomicBool,
    state: std::cell::UnsafeCell<State>,
}

// SAFETY: `state` is only touched while `lock` is held (see `with_state`).
unsafe impl Sync for LargeBlockCache {}

impl LargeBlockCache {
    /// Blocks smaller than this (256 KiB) go straight to the system allocator.
    pub const MIN_BLOCK: usize = 256 << 10;

    /// A cache that keeps at most `max_cached_bytes` of freed blocks.
    pub const fn new(max_cached_bytes: usize) -> Self {
        Self {
            max_cached_bytes: AtomicUsize::new(max_cached_bytes),
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
        unsafe { System.alloc(layout) }
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
        unsafe { System.alloc_zeroed(layout) }
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
}
