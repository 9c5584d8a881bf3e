package api

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Routes returns every operation of OpenAPI as "METHOD /path/{param}", sorted,
// so that tests can compare the document with a router or a client.
func Routes() ([]string, error) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	var routes []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				routes = append(routes, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(routes)
	return routes, nil
}
