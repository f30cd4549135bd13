// Package helm holds roe's Helm chart (roe/) and the test that renders it
// with a small renderer of Helm's template language (the functions the chart
// uses) and strictly decodes every object into the Kubernetes API types, so a
// typo in a field name fails CI. `helm template deploy/helm/roe` renders the
// same objects.
package helm
