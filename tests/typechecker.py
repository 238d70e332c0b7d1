"""The typechecker the tests run intjax under (jaxtyping's import hook names it by module and function):
beartype with the PEP 484 numeric tower, so an int is accepted where a float is annotated, as static
type checkers accept it."""

from beartype import BeartypeConf, beartype

checked = beartype(conf=BeartypeConf(is_pep484_tower=True))
