package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// Request fields of the OpenAI schemas (and of peers' extensions) that roe
// does not implement: set to anything but null, they are refused with a 400
// that names them, never ignored. A field leaves this table when it is
// implemented (and joins the request struct).
var (
	refusedCommon = map[string]string{
		"adapter_source": "LoRAX's adapter_source is not supported: load the adapter (POST /v1/load_lora_adapter), then name it in adapter_id or model",
	}
	refusedCompletion = merged(refusedCommon, map[string]string{
		"suffix": "suffix (insertion, fill-in-the-middle) is not supported",
	})
	refusedChat = merged(refusedCommon, map[string]string{
		"functions":              "functions (deprecated, now tools) are not supported",
		"function_call":          "function_call (deprecated, now tool_choice) is not supported",
		"audio":                  "audio output is not supported",
		"prediction":             "predicted outputs are not supported",
		"reasoning_effort":       "reasoning_effort is not supported: roe serves no reasoning models",
		"verbosity":              "verbosity is not supported",
		"web_search_options":     "web search is not supported",
		"metadata":               "metadata is kept with stored completions, which roe does not store",
		"prompt_cache_key":       "prompt caching is not supported",
		"prompt_cache_retention": "prompt caching is not supported",
	})
	refusedMessage = map[string]string{
		"function_call": "function_call (deprecated) is not supported",
		"audio":         "audio is not supported",
		"refusal":       "refusal messages are not supported",
	}
)

func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// fieldRules say, per request struct type, which of its JSON fields are refused.
type fieldRules map[reflect.Type]map[string]string

// checkFields walks a decoded JSON body against the struct type t: a refused
// field that is set is a 400 naming it; so is a field t does not have,
// unless ignoreUnknown (then it is returned in ignored). Null counts as
// absent; an empty list too, for refused fields (tool_calls: []).
func checkFields(raw json.RawMessage, t reflect.Type, path string, rules fieldRules, ignoreUnknown bool, ignored *[]string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // json.RawMessage: read by its handler
			return nil
		}
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil // the type error is decode's to report
		}
		for i, it := range items {
			if err := checkFields(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i), rules, ignoreUnknown, ignored); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first offending field is the same on every call
	refused := rules[t]
	for _, k := range keys {
		v := bytes.TrimSpace(obj[k])
		name := k
		if path != "" {
			name = path + "." + k
		}
		if why, ok := refused[k]; ok {
			if string(v) == "null" || string(v) == "[]" {
				continue
			}
			return badRequest(name, "%s: %s", name, why)
		}
		f, ok := jsonField(t, k)
		if !ok {
			if ignoreUnknown {
				*ignored = append(*ignored, name)
				continue
			}
			return badRequest(name, "unknown field %q: roe refuses fields it does not implement rather than ignore them (serve --ignore-unknown-fields to ignore them)", name)
		}
		if err := checkFields(v, f.Type, name, rules, ignoreUnknown, ignored); err != nil {
			return err
		}
	}
	return nil
}
