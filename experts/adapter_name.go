package experts

import "roe/model"

// AdapterName is the name of the served expert whose loaded LoRA is a, or
// "" (a merge, a composition, or not loaded): metrics label sequences by it.
func (c *Catalog) AdapterName(a model.Adapter) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for name, l := range c.loras {
		if model.Adapter(l) == a {
			return name
		}
	}
	return ""
}
