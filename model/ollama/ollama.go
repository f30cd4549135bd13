// Package ollama finds models in an Ollama model store: the GGUF blob a
// model name stands for, as `ollama pull` left it.
//
// A store (OLLAMA_MODELS; see Dirs) holds a manifest per name
// and tag, manifests/HOST/NAMESPACE/NAME/TAG, whose layers name blobs by
// digest, blobs/sha256-HEX. The layer of media type
// application/vnd.ollama.image.model is the model's GGUF file.
package ollama

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Prefix marks a model reference to the Ollama store on the command line:
// ollama:NAME[:TAG].
const Prefix = "ollama:"

// ErrNotFound is returned when the store has no manifest for a name.
var ErrNotFound = errors.New("ollama: model not found")

// Media types of a manifest's layers.
const (
	MediaModel     = "application/vnd.ollama.image.model"
	MediaAdapter   = "application/vnd.ollama.image.adapter"
	MediaProjector = "application/vnd.ollama.image.projector"
	MediaTemplate  = "application/vnd.ollama.image.template"
	MediaParams    = "application/vnd.ollama.image.params"
	MediaSystem    = "application/vnd.ollama.image.system"
	MediaMessages  = "application/vnd.ollama.image.messages"
	MediaLicense   = "application/vnd.ollama.image.license"
)

// Model is what a manifest names.
type Model struct {
	Name string // HOST/NAMESPACE/NAME:TAG, as resolved
	// GGUF is the path of the model's blob.
	GGUF string
	// Adapters are the paths of LoRA adapter blobs (GGUF) applied on top.
	Adapters []string
	// Other lists the media types of the layers besides the model and
	// adapters (template, params, system, license, projector …).
	Other []string
}

// Dirs returns where stores are looked for, in order: OLLAMA_MODELS when
// set (then alone), else ~/.ollama/models and the Linux service's
// /usr/share/ollama/.ollama/models.
func Dirs() []string {
	if d := os.Getenv("OLLAMA_MODELS"); d != "" {
		return []string{d}
	}
	var dirs []string
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".ollama", "models"))
	}
	return append(dirs, "/usr/share/ollama/.ollama/models")
}

// Find is Resolve over the stores Dirs names: the first that has ref.
func Find(ref string) (*Model, error) {
	var first error
	dirs := Dirs()
	for _, dir := range dirs {
		m, err := Resolve(dir, ref)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return m, err
		}
		if first == nil {
			first = err
		}
	}
	if len(dirs) > 1 {
		return nil, fmt.Errorf("%w (looked in %s; OLLAMA_MODELS names another store)", first, strings.Join(dirs, ", "))
	}
	return nil, first
}

// Resolve finds ref (NAME, NAME:TAG, NAMESPACE/NAME[:TAG] or
// HOST/NAMESPACE/NAME[:TAG]; the default host is registry.ollama.ai, the
// namespace library and the tag latest) in the store at dir.
func Resolve(dir, ref string) (*Model, error) {
	host, ns, name, tag, err := ParseName(ref)
	if err != nil {
		return nil, err
	}
	full := fmt.Sprintf("%s/%s/%s:%s", host, ns, name, tag)
	path := filepath.Join(dir, "manifests", host, ns, name, tag)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (no %s; `ollama pull %s` fetches it)", ErrNotFound, full, path, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("ollama: %s: %w", full, err)
	}
	m, err := parseManifest(b, dir)
	if err != nil {
		return nil, fmt.Errorf("ollama: %s: manifest %s: %w", full, path, err)
	}
	m.Name = full
	return m, nil
}

// manifest is the part of an OCI image manifest the store's readers need.
type manifest struct {
	SchemaVersion int     `json:"schemaVersion"`
	Layers        []layer `json:"layers"`
}

type layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// parseManifest reads a manifest and checks that every blob it names is
// a file of the stated size in dir/blobs.
func parseManifest(b []byte, dir string) (*Model, error) {
	var mf manifest
	if err := json.Unmarshal(b, &mf); err != nil {
		return nil, err
	}
	if mf.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d, want 2", mf.SchemaVersion)
	}
	m := &Model{}
	for _, l := range mf.Layers {
		if !digestRE.MatchString(l.Digest) {
			return nil, fmt.Errorf("layer %s: digest %q is not sha256:HEX", l.MediaType, l.Digest)
		}
		blob := filepath.Join(dir, "blobs", strings.Replace(l.Digest, ":", "-", 1))
		switch l.MediaType {
		case MediaModel, MediaAdapter:
			st, err := os.Stat(blob)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l.MediaType, err)
			}
			if st.Size() != l.Size {
				return nil, fmt.Errorf("layer %s: blob %s has %d bytes, the manifest says %d (an unfinished pull?)", l.MediaType, blob, st.Size(), l.Size)
			}
			if l.MediaType == MediaAdapter {
				m.Adapters = append(m.Adapters, blob)
			} else if m.GGUF != "" {
				return nil, fmt.Errorf("two model layers")
			} else {
				m.GGUF = blob
			}
		default:
			m.Other = append(m.Other, l.MediaType)
		}
	}
	if m.GGUF == "" {
		return nil, fmt.Errorf("no layer of type %s", MediaModel)
	}
	return m, nil
}

// partRE is what the store accepts as one part of a name.
var partRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseName splits a model reference into host, namespace, name and tag,
// with Ollama's defaults for the parts left out.
func ParseName(ref string) (host, ns, name, tag string, err error) {
	host, ns, tag = "registry.ollama.ai", "library", "latest"
	path := ref
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		path, tag = ref[:i], ref[i+1:]
	}
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		ns, name = parts[0], parts[1]
	case 3:
		host, ns, name = parts[0], parts[1], parts[2]
	default:
		return "", "", "", "", fmt.Errorf("ollama: model name %q: want NAME, NAMESPACE/NAME or HOST/NAMESPACE/NAME, with an optional :TAG", ref)
	}
	for _, p := range []string{host, ns, name, tag} {
		if !partRE.MatchString(p) || len(p) > 128 {
			return "", "", "", "", fmt.Errorf("ollama: model name %q: part %q is not a name (letters, digits, '.', '_', '-')", ref, p)
		}
	}
	return host, ns, name, tag, nil
}
