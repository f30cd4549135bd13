package mmapfile

import "syscall"

// adviseHuge asks for a weight mapping on transparent huge pages
// (MADV_HUGEPAGE; a hint, so errors are ignored). Pages the file has in the
// page cache as 2 MiB folios are then mapped 2 MiB at a time, and pages read
// cold are read into such folios. Decode streams every weight once per
// token, and on 4 KiB pages each 4 KiB of weights costs a TLB miss and
// restarts the hardware prefetcher: Intel Xeon (KVM, 2 vCPUs), 135M-shape
// Q8_0 decode at 1 thread 68 → 82–90 tok/s once the file's 139 MiB were
// PMD-mapped (smaps FilePmdMapped). A file cached in small pages (written in
// small chunks and not evicted since) stays on 4 KiB pages: the kernel
// cannot collapse a regular file's cache for a mapping (MADV_COLLAPSE:
// EINVAL on this kernel).
func adviseHuge(b []byte) {
	if len(b) >= 2<<20 {
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
}
