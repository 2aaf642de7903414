//! A global allocator that keeps large freed blocks for reuse, over mimalloc.
//!
//! A training step allocates and frees the same large tensors (activations, logits of
//! `tokens × vocabulary` floats, their gradients) at every update. The system allocator returns
//! blocks above its mmap threshold (glibc: 128 KiB, at most 32 MiB) to the kernel on `free`, so each
//! fresh block page-faults on first touch: on the Multi30k config a quarter of the training process's
//! CPU time was kernel time, ~250,000 page faults a second. Here blocks of 256 KiB and more are
//! rounded up to a size class (four per power of two, so at most 25% larger) and, when freed, kept in
//! a per-class stack to serve the next request of that class. At most [`MAX_CACHED_BYTES`] are kept.
//!
//! Smaller blocks, and the cache's own, come from mimalloc rather than glibc's `malloc`: the bf16
//! products allocate and free many small packed operands from both threads (attention's per-head
//! products), where glibc's frees and consolidation showed in profiles. Measured alternating on
//! 2026-12-06 (`seqls bench train --shape S --precision bf16 --rounds 1 --runs 10`, five rounds):
//! median 7,658 → 8,011 target tok/s (+4.6%); bf16 decoding +5–10%, f32 training unchanged.
//! mimalloc alone, without the cache, trained f32 about 3% slower. By default mimalloc returns freed
//! pages to the kernel after a delay (a second), and each page returned faults in again when reused;
//! [`keep_freed_memory`] turns that off (+5–8% more in bf16 training, the same peak memory).

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, `mimalloc.h` of the v3 sources
/// that libmimalloc-sys 0.1 builds; the bindings name no constant for it): the milliseconds freed
/// memory stays committed before mimalloc returns it to the kernel: 1,000 by default (`options.c`),
/// never at -1.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the memory mimalloc frees in the process instead of returning it to the kernel (see the
/// module documentation); call once at start.
pub fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's options; mimalloc synchronises its options itself.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Smallest request served from the cache: `2^MIN_LOG2` bytes.
const MIN_LOG2: u32 = 18;
/// Alignment of every cached block (a page), which serves any smaller requested alignment.
const ALIGN: usize = 4096;
/// Size classes: four per power of two, from 256 KiB to 2^(18 + 16) = 16 GiB.
const CLASSES: usize = 4 * 16;
/// Free blocks kept per class.
const SLOTS: usize = 16;
/// Most bytes kept in free blocks.
pub const MAX_CACHED_BYTES: usize = 4 << 30;

struct Cache {
    /// Free blocks (addresses) per class, used as stacks.
    blocks: [[usize; SLOTS]; CLASSES],
    len: [usize; CLASSES],
    cached_bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    blocks: [[0; SLOTS]; CLASSES],
    len: [0; CLASSES],
    cached_bytes: 0,
});

/// The cached allocator; see the module documentation.
pub struct BlockCache;

/// `(class index, class size)` of a request of `size` bytes, or `None` when it bypasses the cache.
fn class_of(size: usize, align: usize) -> Option<(usize, usize)> {
    if size < (1 << MIN_LOG2) || align > ALIGN {
        return None;
    }
    let p = usize::BITS - 1 - size.leading_zeros();
    let base = 1usize << p;
    let step = base / 4;
    let k = (size - base).div_ceil(step);
    let (p, k) = if k == 4 { (p + 1, 0) } else { (p, k) };
    let index = (p - MIN_LOG2) as usize * 4 + k;
    (index < CLASSES).then(|| (index, (1usize << p) + k * ((1usize << p) / 4)))
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A freed block of class `index` (`size` bytes) from the cache, if it holds one.
fn take(index: usize, size: usize) -> Option<*mut u8> {
    let mut cache = lock();
    (cache.len[index] > 0).then(|| {
        cache.len[index] -= 1;
        let n = cache.len[index];
        cache.cached_bytes -= size;
        cache.blocks[index][n] as *mut u8
    })
}

// SAFETY: every block handed out is either mimalloc's answer to the same layout rule
// (class size, page alignment) or a block of that class freed earlier; blocks are returned to
// mimalloc with exactly the layout they were allocated with.
unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((index, size)) = class_of(layout.size(), layout.align()) else {
            return unsafe { MiMalloc.alloc(layout) };
        };
        if let Some(ptr) = take(index, size) {
            return ptr;
        }
        // SAFETY: size ≥ 256 KiB and ALIGN is a power of two.
        unsafe { MiMalloc.alloc(Layout::from_size_align_unchecked(size, ALIGN)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((index, size)) = class_of(layout.size(), layout.align()) else {
            return unsafe { MiMalloc.alloc_zeroed(layout) };
        };
        match take(index, size) {
            Some(ptr) => {
                // SAFETY: the block holds `size` ≥ layout.size() bytes.
                unsafe { ptr.write_bytes(0, layout.size()) };
                ptr
            }
            // SAFETY: as in `alloc`; mimalloc zeroes what `alloc_zeroed` hands out.
            None => unsafe {
                MiMalloc.alloc_zeroed(Layout::from_size_align_unchecked(size, ALIGN))
            },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((index, size)) = class_of(layout.size(), layout.align()) else {
            return unsafe { MiMalloc.dealloc(ptr, layout) };
        };
        {
            let mut cache = lock();
            if cache.len[index] < SLOTS && cache.cached_bytes + size <= MAX_CACHED_BYTES {
                let n = cache.len[index];
                cache.blocks[index][n] = ptr as usize;
                cache.len[index] += 1;
                cache.cached_bytes += size;
                return;
            }
        }
        // SAFETY: allocated by `alloc` with this class layout.
        unsafe { MiMalloc.dealloc(ptr, Layout::from_size_align_unchecked(size, ALIGN)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class_of(layout.size(), layout.align());
        let new = class_of(new_size, layout.align());
        match (old, new) {
            // Both small: mimalloc may grow in place.
            (None, None) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            // The same class already holds `new_size` bytes.
            (Some((a, _)), Some((b, _))) if a == b => ptr,
            _ => {
                // SAFETY: `new_size` is non-zero (GlobalAlloc contract) and the alignment unchanged.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let fresh = unsafe { self.alloc(new_layout) };
                if !fresh.is_null() {
                    // SAFETY: both blocks hold at least the smaller of the two sizes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                fresh
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is the purge delay: its default is 1,000 (ms), which a shift of mimalloc's
    /// option numbering would not keep, and setting it reads back.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads and sets mimalloc options.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            }
            keep_freed_memory();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), -1);
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000);
        }
    }

    #[test]
    fn classes_cover_each_size_with_at_most_a_quarter_to_spare() {
        assert_eq!(class_of(1000, 8), None);
        assert_eq!(class_of(1 << 18, 8), Some((0, 1 << 18)));
        assert_eq!(class_of((1 << 18) + 1, 8), Some((1, (1 << 18) + (1 << 16))));
        assert_eq!(
            class_of(1 << 20, 8192),
            None,
            "alignment above a page bypasses"
        );
        let mut last = 0;
        for size in (1usize << 18..1 << 26).step_by(4093) {
            let (index, class) = class_of(size, 64).unwrap();
            assert!(
                class >= size && class <= size + size / 4,
                "{size} → {class}"
            );
            assert!(index >= last, "classes grow with the size");
            last = index;
            assert_eq!(
                class_of(class, 64),
                Some((index, class)),
                "a class size is its own class"
            );
        }
    }

    #[test]
    fn freed_blocks_are_reused_and_contents_survive_growth() {
        let layout = Layout::from_size_align(3 << 20, 64).unwrap();
        unsafe {
            let a = BlockCache.alloc(layout);
            a.write_bytes(7, layout.size());
            BlockCache.dealloc(a, layout);
            let b = BlockCache.alloc(layout);
            assert_eq!(a, b, "the freed block serves the next request of its class");
            let zeroed = BlockCache.alloc_zeroed(layout);
            assert!(
                (0..layout.size())
                    .step_by(4096)
                    .all(|i| *zeroed.add(i) == 0)
            );
            let grown = BlockCache.realloc(b, layout, 9 << 20);
            assert_eq!(*grown.add(layout.size() - 1), 7);
            BlockCache.dealloc(grown, Layout::from_size_align(9 << 20, 64).unwrap());
            BlockCache.dealloc(zeroed, layout);
        }
    }
}
