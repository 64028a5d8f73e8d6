module github.com/densify-dev/azure-rest-api-token/k8scheck

go 1.26

require (
	github.com/densify-dev/azure-rest-api-token v0.0.0-00010101000000-000000000000
	github.com/go-jose/go-jose/v4 v4.1.9
	github.com/google/go-cmp v0.7.0
)

// The product from this tree: the check imports its Entra stand-in (internal/entratest), which the
// module path, a child of the product's, is allowed to import.
replace github.com/densify-dev/azure-rest-api-token => ../..
