//! The C memory functions the compiler calls (there is no libc here),
//! written with string instructions so that they cannot be turned back into
//! calls to themselves.

use core::arch::asm;

/// # Safety
/// `dst` and `src` valid for `n` bytes, not overlapping.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; DF is clear (ABI).
    unsafe { asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags)) };
    dst
}

/// # Safety
/// `dst` and `src` valid for `n` bytes; they may overlap.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: forward copy is correct when dst is below src or disjoint.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: copy backwards (DF set, then restored) for a dst above src.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dst
}

/// # Safety
/// `dst` valid for `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; DF is clear (ABI).
    unsafe { asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags)) };
    dst
}

/// # Safety
/// `a` and `b` valid for `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, within both ranges; volatile keeps this a loop.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

/// # Safety
/// As `memcmp`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_move_set_compare() {
        let src: Vec<u8> = (0..=255).collect();
        let mut dst = vec![0u8; 256];
        // SAFETY: both buffers hold 256 bytes and do not overlap.
        unsafe { memcpy(dst.as_mut_ptr(), src.as_ptr(), 256) };
        assert_eq!(dst, src);
        // Overlapping, destination above the source: must copy backwards.
        let mut b: Vec<u8> = (0..16).collect();
        // SAFETY: [0, 12) and [4, 16) lie inside the 16-byte buffer.
        unsafe { memmove(b.as_mut_ptr().add(4), b.as_ptr(), 12) };
        assert_eq!(b, [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        // Overlapping, destination below the source.
        let mut b: Vec<u8> = (0..16).collect();
        // SAFETY: as above.
        unsafe { memmove(b.as_mut_ptr(), b.as_ptr().add(4), 12) };
        assert_eq!(&b[..12], &[4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        // Zero length touches nothing.
        // SAFETY: n = 0.
        unsafe { memmove(b.as_mut_ptr().add(8), b.as_ptr(), 0) };
        assert_eq!(b[8], 12);
        let mut z = vec![1u8; 10];
        // SAFETY: 10 bytes.
        unsafe { memset(z.as_mut_ptr(), 0x5a, 10) };
        assert!(z.iter().all(|&x| x == 0x5a));
        // SAFETY: all ranges are 4 bytes long and inside their arrays.
        let (eq, lt, gt) = unsafe {
            (memcmp(b"abcd".as_ptr(), b"abcd".as_ptr(), 4), memcmp(b"abca".as_ptr(), b"abcd".as_ptr(), 4), bcmp(b"abce".as_ptr(), b"abcd".as_ptr(), 4))
        };
        assert_eq!((eq, lt.signum(), gt != 0), (0, -1, true));
    }
}
