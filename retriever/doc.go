// Package retriever picks experts for a request by retrieval (Retrieval-of-Experts,
// Jang et al. 2023): the request's instances are embedded (Embedder), normalised
// the same way as the library's stored instance embeddings (by default centred on
// the library mean and L2-normalised), scored against all of them with an exact,
// blocked SIMD maximum inner-product search (Index.Search, built on
// kernels.MatMulT), and each query votes for the expert of its top-1 neighbour
// (Index.Route). Other aggregations (sum of the best m scores, softmax
// weighting), a confidence threshold with fallback to the base model, and a BM25
// lexical side (Lexical, bleve) combined by reciprocal rank fusion (FuseRRF) are
// available through RouteOptions.
//
// The Index holds every instance embedding in one contiguous float32 matrix
// [N, dim], rows of one expert adjacent, stored raw; normalisation is folded into
// the scores (see Normalization) so no second copy of the matrix is kept. It is
// safe for concurrent use: searches share a read lock, Add/Put/Remove take the
// write lock. The package knows nothing of the expert library's storage; the
// caller feeds it experts (Add, Put, Remove) and persists Mean if it wants to.
package retriever
