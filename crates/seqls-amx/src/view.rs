//! A strided matrix operand over a host buffer.

/// A matrix operand: element `(i, j)` at `ptr + i·row_stride + j·col_stride`, inside a buffer of
/// `len` elements from `ptr`; row-major or transposed, so its rows or its columns are contiguous.
#[derive(Clone, Copy)]
pub struct View {
    ptr: *const f32,
    len: usize,
    row_stride: usize,
    col_stride: usize,
}

impl View {
    /// `x` as a row-major `[_, cols]` matrix.
    pub fn rows(x: &[f32], cols: usize) -> Self {
        View {
            ptr: x.as_ptr(),
            len: x.len(),
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of `x`, a row-major `[_, cols]` matrix.
    pub fn transposed(x: &[f32], cols: usize) -> Self {
        View {
            ptr: x.as_ptr(),
            len: x.len(),
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Whether every element of a `[rows, cols]` matrix lies inside the buffer.
    pub fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.len
    }

    pub fn ptr(&self) -> *const f32 {
        self.ptr
    }

    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// `len` values from `(i, j)` on, along a row (`down` false) or a column (`down` true), which
    /// must be contiguous there (`col_stride` resp. `row_stride` 1).
    ///
    /// # Safety
    /// The values must lie inside the buffer, which must be alive while the slice is.
    #[inline(always)]
    pub(crate) unsafe fn run<'a>(&self, i: usize, j: usize, len: usize, down: bool) -> &'a [f32] {
        debug_assert_eq!(
            if down {
                self.row_stride
            } else {
                self.col_stride
            },
            1
        );
        // SAFETY: the caller's promise.
        unsafe {
            std::slice::from_raw_parts(self.ptr.add(i * self.row_stride + j * self.col_stride), len)
        }
    }
}

// SAFETY: a `View` only reads, and its users promise the buffer outlives every use, on whichever
// thread (the products share operands between the thread pool's threads).
unsafe impl Send for View {}
unsafe impl Sync for View {}
