from .export import extract_student

__all__ = ['extract_student']
