// Command compose-check loads a Compose file with compose-go, the loader Docker Compose v2
// itself uses (schema validation, interpolation, duplicate keys refused), then checks what the
// project promises of its stack: every image pinned to a version, and every service another
// waits on as healthy has a health check.
//
//	compose-check deploy/docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	problems, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	for _, problem := range problems {
		fmt.Fprintf(os.Stderr, "compose-check: %s: %s\n", os.Args[1], problem)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Printf("compose-check: %s: valid\n", os.Args[1])
}

func check(path string) ([]string, error) {
	options, err := cli.NewProjectOptions([]string{path}, cli.WithName("pipeline"))
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	var problems []string
	names := make([]string, 0, len(project.Services))
	for name := range project.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		service := project.Services[name]
		if service.Build == nil {
			problems = append(problems, unpinned(name, service.Image)...)
		}
		for target, dependency := range service.DependsOn {
			if dependency.Condition != types.ServiceConditionHealthy {
				continue
			}
			waited, ok := project.Services[target]
			if !ok || waited.HealthCheck == nil || waited.HealthCheck.Disable {
				problems = append(problems, fmt.Sprintf(
					"service %q waits for %q to be healthy, but %q has no health check", name, target, target))
			}
		}
	}
	return problems, nil
}

// unpinned names what is wrong with an image reference that does not pin a version.
func unpinned(service, image string) []string {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return []string{fmt.Sprintf("service %q: image %q has no tag (pin a version)", service, image)}
	}
	tag := image[colon+1:]
	if tag == "latest" || tag == "main" || tag == "master" {
		return []string{fmt.Sprintf("service %q: image %q floats (pin a version, not %q)", service, image, tag)}
	}
	return nil
}
