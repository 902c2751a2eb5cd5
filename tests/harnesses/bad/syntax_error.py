"""A syntax error."""
def fn(x)
    return x
