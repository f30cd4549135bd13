package serve

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"roe/console"
)

// consoleRoutes serves the web console at /ui/ (and / leads there). Its
// files are static and public; everything it shows comes from the API,
// under the API key the user gives the page.
func (s *Server) consoleRoutes() {
	toUI := func(c *fiber.Ctx) error {
		if p := c.Path(); p != "/" && p != "/ui" {
			return c.Next() // routing is not strict: "/ui/" matches "/ui" too
		}
		return c.Redirect("/ui/", fiber.StatusFound)
	}
	s.app.Get("/", toUI)
	s.app.Get("/ui", toUI)
	files := filesystem.New(filesystem.Config{Root: http.FS(console.Files()), Index: "index.html"})
	s.app.Use("/ui/", func(c *fiber.Ctx) error {
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			return c.Next()
		}
		c.Set("Content-Security-Policy", console.ContentSecurityPolicy)
		c.Set("X-Content-Type-Options", "nosniff")
		c.Set("Referrer-Policy", "no-referrer")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return files(c)
	})
}
