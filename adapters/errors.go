package adapters

import "errors"

// Sentinel errors; wrapped with the file, tensor or setting they concern.
var (
	// ErrConfig means adapter_config.json is malformed.
	ErrConfig = errors.New("invalid adapter config")
	// ErrUnsupported means the adapter uses a PEFT feature roe does not implement.
	ErrUnsupported = errors.New("unsupported adapter feature")
	// ErrShape means an adapter tensor does not fit the base model.
	ErrShape = errors.New("adapter does not fit the base model")
	// ErrTensor means a tensor name is unknown or a lora_A/lora_B pair is incomplete.
	ErrTensor = errors.New("invalid adapter tensor")
	// ErrMerge means a merge was asked with invalid experts or options.
	ErrMerge = errors.New("invalid merge")
)
