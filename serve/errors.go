package serve

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"roe/adapters"
	"roe/experts"
	"roe/library"
	"roe/model/safetensors"
)

// apiError is an OpenAI-style error: its status, type and message reach the client.
type apiError struct {
	Status  int
	Type    string // invalid_request_error, authentication_error, not_found_error, rate_limit_error, server_error
	Param   string
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, format string, a ...any) *apiError {
	return &apiError{Status: fiber.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, a...)}
}

func unprocessable(param, code, format string, a ...any) *apiError {
	return &apiError{Status: fiber.StatusUnprocessableEntity, Type: "invalid_request_error", Param: param, Code: code, Message: fmt.Sprintf(format, a...)}
}

// notFound is the official API's 404: an invalid_request_error with code model_not_found.
func notFound(format string, a ...any) *apiError {
	return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Message: fmt.Sprintf(format, a...)}
}

// errorBody is the JSON shape of the official API's errors.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// writeError answers with err as an OpenAI error object.
func (s *Server) writeError(c *fiber.Ctx, err error) error {
	var ae *apiError
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		typ := "invalid_request_error"
		if fe.Code >= 500 {
			typ = "server_error"
		}
		code := ""
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			code = "body_too_large"
		}
		ae = &apiError{Status: fe.Code, Type: typ, Code: code, Message: fe.Message}
	case errors.Is(err, ErrQueueFull):
		ae = &apiError{Status: fiber.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full", Message: err.Error()}
		c.Set("Retry-After", "1")
	case errors.Is(err, ErrShuttingDown):
		ae = &apiError{Status: fiber.StatusServiceUnavailable, Type: "server_error", Message: err.Error()}
	case errors.As(domainError(err), &ae):
		if ae.Status == fiber.StatusTooManyRequests {
			c.Set("Retry-After", "1")
		}
	default:
		s.log.Error("request failed", "path", c.Path(), "request_id", c.Locals("requestid"), "err", err)
		ae = &apiError{Status: fiber.StatusInternalServerError, Type: "server_error", Message: err.Error()}
	}
	var b errorBody
	b.Error.Message, b.Error.Type = ae.Message, ae.Type
	if ae.Param != "" {
		b.Error.Param = &ae.Param
	}
	if ae.Code != "" {
		b.Error.Code = &ae.Code
	}
	s.metrics.errors.WithLabelValues(routeLabel(c), ae.Type).Inc()
	return c.Status(ae.Status).JSON(b)
}

// domainError maps the errors of the expert catalog and the library to API
// errors (any other error is returned as it is: a 500).
func domainError(err error) error {
	var fe *experts.FieldError
	param := ""
	if errors.As(err, &fe) {
		param = fe.Field
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, experts.ErrBusy):
		return &apiError{Status: fiber.StatusTooManyRequests, Type: "rate_limit_error", Code: "embedding_busy", Message: err.Error()}
	case errors.Is(err, experts.ErrNotFound), errors.Is(err, library.ErrNotFound):
		return &apiError{Status: fiber.StatusNotFound, Type: "invalid_request_error", Param: param, Code: "model_not_found", Message: err.Error()}
	case errors.Is(err, library.ErrUnavailable):
		return &apiError{Status: fiber.StatusServiceUnavailable, Type: "server_error", Code: "library_unavailable", Message: err.Error()}
	case errors.Is(err, library.ErrExists):
		return &apiError{Status: fiber.StatusConflict, Type: "invalid_request_error", Param: "name", Code: "expert_exists", Message: err.Error()}
	case errors.Is(err, experts.ErrReserved):
		return &apiError{Status: fiber.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "reserved_name", Message: err.Error()}
	case fe != nil && errors.Is(err, experts.ErrInvalid):
		return badRequest(param, "%s", err.Error())
	case errors.Is(err, experts.ErrInvalid), errors.Is(err, experts.ErrOtherBase),
		errors.Is(err, library.ErrInvalid), errors.Is(err, library.ErrFingerprint),
		errors.Is(err, adapters.ErrConfig), errors.Is(err, adapters.ErrShape), errors.Is(err, adapters.ErrTensor),
		errors.Is(err, adapters.ErrUnsupported), errors.Is(err, safetensors.ErrHeader):
		return unprocessable(param, "invalid_expert", "%v", err)
	}
	return err
}
