module github.com/skiff-sh/skiff/test/kubectl-compat/v1.20

go 1.16

require k8s.io/kubectl v0.20.15
