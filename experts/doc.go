// Package experts is roe's domain of experts: which experts a server serves,
// how a request's experts are chosen, composed and added.
//
// A Catalog follows an expert library (roe/library) through its change feed
// and keeps three things current: the routing index of every stored instance
// embedding (roe/retriever), the experts' manifests, and their loaded LoRA
// adapters with a cache of merges (roe/adapters). On it:
//
//   - Select picks the adapter of a request: the base model, a named expert,
//     an explicit composition, or auto routing (embed the query instances,
//     MIPS over the library, vote; fall back to the base model when unsure).
//   - Add stores an uploaded, imported or trained expert: the one path that
//     validates it against the base model, samples and embeds its instances
//     and makes it routable. Train trains an expert from a task with the
//     Recipe the shipped experts were trained with; Merge stores a merge.
//   - ImportFS adds exported experts (the starter library) and can resume.
//
// Errors are the package's sentinels (ErrNotFound, ErrInvalid, ErrReserved,
// ErrBusy, ErrOtherBase) or the library's; a *FieldError names the request
// field at fault. The HTTP layer (roe/serve) maps them to status codes.
//
// Dependencies point one way: serve → experts → {retriever, library,
// adapters, train, tasks} → model → kernels.
package experts
